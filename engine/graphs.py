"""Pure, iterative graph helpers on node ids and (source, target) edges.

Shared by validation, the planner and the original ``Graph`` API. No recursion anywhere, so a
20,000-deep chain is fine. Edges naming a node that is not in ``node_ids`` are ignored; a node
order given by the caller is kept wherever the result has a free choice (deterministic output).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence

import networkx as nx

Edge = tuple[str, str]


def adjacency(node_ids: Iterable[str], edges: Iterable[Edge]) -> dict[str, list[str]]:
    """Successors of every node (each successor once), ignoring edges to unknown nodes."""
    succ: dict[str, list[str]] = {n: [] for n in node_ids}
    seen: set[Edge] = set()
    for source, target in edges:
        if source in succ and target in succ and (source, target) not in seen:
            seen.add((source, target))
            succ[source].append(target)
    return succ


def _kahn(succ: Mapping[str, list[str]]) -> tuple[list[str], dict[str, int]]:
    """Kahn's algorithm: the ordered nodes and the in-degrees left (non-zero only on or after cycles)."""
    indegree = dict.fromkeys(succ, 0)
    for targets in succ.values():
        for target in targets:
            indegree[target] += 1
    queue = deque(n for n, d in indegree.items() if d == 0)
    order: list[str] = []
    while queue:
        node = queue.popleft()
        order.append(node)
        for target in succ[node]:
            indegree[target] -= 1
            if indegree[target] == 0:
                queue.append(target)
    return order, indegree


def topological_order(node_ids: Iterable[str], edges: Iterable[Edge]) -> list[str] | None:
    """Every node after all its predecessors, or ``None`` when the graph has a cycle.

    Never raises; call ``find_cycle`` to name the cycle.
    """
    succ = adjacency(node_ids, edges)
    order, _ = _kahn(succ)
    return order if len(order) == len(succ) else None


def find_cycles(node_ids: Sequence[str], edges: Iterable[Edge]) -> list[list[str]]:
    """One cycle per strongly connected component that has one, nodes in edge order.

    A cycle ``[a, b, c]`` means ``a -> b -> c -> a``; it starts at its node that comes first in
    ``node_ids``. A self-loop ``a -> a`` is reported as ``[a]``. Cost: O(nodes + edges).
    """
    node_ids = list(node_ids)
    edges = list(edges)
    succ = adjacency(node_ids, edges)
    order, indegree = _kahn(succ)
    if len(order) == len(succ):
        return []
    position = {n: i for i, n in enumerate(node_ids)}
    stuck = [n for n in node_ids if indegree[n] > 0]
    sub = nx.DiGraph()
    sub.add_nodes_from(stuck)
    sub.add_edges_from((s, t) for s in stuck for t in succ[s] if indegree[t] > 0)
    cycles = []
    for component in nx.strongly_connected_components(sub):
        if len(component) == 1:
            (only,) = component
            if not sub.has_edge(only, only):
                continue
        cycles.append(_cycle_in_component(component, sub, position))
    cycles.sort(key=lambda cycle: position[cycle[0]])
    return cycles


def _cycle_in_component(component: set[str], sub: nx.DiGraph, position: Mapping[str, int]) -> list[str]:
    """Walk predecessors inside a strongly connected component until a node repeats."""
    start = min(component, key=position.__getitem__)
    walk: list[str] = []
    index: dict[str, int] = {}
    node = start
    while node not in index:
        index[node] = len(walk)
        walk.append(node)
        node = min((p for p in sub.predecessors(node) if p in component), key=position.__getitem__)
    cycle = list(reversed(walk[index[node] :]))  # the walk went backwards along edges
    first = min(range(len(cycle)), key=lambda i: position[cycle[i]])
    return cycle[first:] + cycle[:first]


def find_cycle(node_ids: Sequence[str], edges: Iterable[Edge]) -> list[str] | None:
    """The first cycle (see ``find_cycles``) or ``None`` when the graph is acyclic."""
    cycles = find_cycles(node_ids, edges)
    return cycles[0] if cycles else None


def format_cycle(cycle: Sequence[str]) -> str:
    """``a -> b -> c -> a`` for the cycle ``[a, b, c]``."""
    return " -> ".join([*cycle, cycle[0]]) if cycle else ""


def critical_path(durations: Mapping[str, float], edges: Iterable[Edge]) -> tuple[float, list[str]]:
    """Length and nodes of the longest path, a node's weight being its duration.

    Nodes are the keys of ``durations``. An empty graph gives ``(0.0, [])``.

    Raises:
        ValueError: the graph has a cycle (named in the message).
    """
    edges = list(edges)
    succ = adjacency(durations, edges)
    order, _ = _kahn(succ)
    if len(order) != len(succ):
        cycle = find_cycle(list(durations), edges) or []
        raise ValueError(f"the graph has a cycle ({format_cycle(cycle)}); it has no critical path")
    finish: dict[str, float] = {}
    best_parent: dict[str, str | None] = dict.fromkeys(durations)
    start = dict.fromkeys(durations, 0.0)
    for node in order:
        finish[node] = start[node] + float(durations[node])
        for target in succ[node]:
            if best_parent[target] is None or finish[node] > start[target]:
                start[target] = finish[node]
                best_parent[target] = node
    if not finish:
        return 0.0, []
    end = max(order, key=lambda n: finish[n])  # first of the latest-finishing nodes
    path = [end]
    while (parent := best_parent[path[-1]]) is not None:
        path.append(parent)
    return finish[end], path[::-1]


def layers(node_ids: Iterable[str], edges: Iterable[Edge]) -> list[list[str]]:
    """Topological generations: sources first, each node one layer after its latest parent.

    Never raises: nodes on a cycle (or downstream of one) are put together in a last layer, so
    an invalid workflow can still be laid out.
    """
    succ = adjacency(node_ids, edges)
    order, _ = _kahn(succ)
    depth = dict.fromkeys(order, 0)
    for node in order:
        for target in succ[node]:
            if target in depth:
                depth[target] = max(depth[target], depth[node] + 1)
    out: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for node in order:
        out[depth[node]].append(node)
    leftover = [n for n in succ if n not in depth]
    if leftover:
        out.append(leftover)
    return out


def descendants(sources: Iterable[str], edges: Iterable[Edge]) -> set[str]:
    """The nodes ``sources`` and every node downstream of them (what their outputs reach)."""
    return ancestors(sources, ((target, source) for source, target in edges))


def ancestors(targets: Iterable[str], edges: Iterable[Edge]) -> set[str]:
    """The nodes ``targets`` and every node upstream of them (what they need to run)."""
    into: dict[str, list[str]] = {}
    for source, target in edges:
        into.setdefault(target, []).append(source)
    keep: set[str] = set()
    stack = list(targets)
    while stack:
        node = stack.pop()
        if node not in keep:
            keep.add(node)
            stack += into.get(node, [])
    return keep
