"""The original library's ``Graph`` of services, plus what the article could not answer.

The article's sums (``get_total_resource`` = C_S, ``get_total_time`` = T_S) are kept exactly; the
same graph also gives the schedule of ``execute()`` on a virtual clock, its peak concurrent
demand, the makespan under a capacity and the critical path, and converts to and from a
workflow file (nodes become ``sim.task``).
"""

from __future__ import annotations

import heapq
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.errors import suggest
from engine.graphs import critical_path, layers, topological_order
from engine.items import planned_items
from engine.registry import Registry
from engine.resources import Capacity
from engine.workflow import Workflow
from servicegrid.service import Service

MB_PER_UNIT = 1024  # one article compute unit is 1 GB of memory
SECONDS_PER_UNIT = 60  # one article time unit is one minute
_EPS = 1e-9


@dataclass
class _Node:
    service: Any  # None: named by add_edge only, not added yet (see Graph.add_edge)
    compute_resource: float | None = None  # node-level values from set_node_resource
    execution_time: float | None = None

    @property
    def demand(self) -> float:
        value = self.compute_resource
        return getattr(self.service, "compute_resource", 0) if value is None else value

    @property
    def duration(self) -> float:
        value = self.execution_time
        return getattr(self.service, "execution_time", 0) if value is None else value


class Graph:
    """A directed acyclic graph of named services.

    Times and demands are in the article's units (minutes; GB of memory) and are returned as
    given, so integer inputs give integer sums. ``execute()`` is instant: it simulates the
    schedule on a virtual clock and calls ``run`` only on services that define one.
    """

    def __init__(self) -> None:
        self._nodes: dict[str, _Node] = {}
        self._succ: dict[str, list[str]] = {}
        self._pred: dict[str, list[str]] = {}
        self.schedule: dict[str, tuple[float, float]] = {}
        self.order: list[str] = []
        self.results: dict[str, Any] = {}
        self._executed_capacity: float | None = None
        self._peak: float = 0
        self._fresh = False

    # -- building ---------------------------------------------------------------------------
    def add_node(self, name: str, service: Any) -> None:
        """Add a service under a unique name (or give one to a node an edge already named).

        Raises:
            ValueError: the name is taken by another service.
            TypeError: ``service`` has no ``compute_resource`` / ``execution_time``.
        """
        if name in self._nodes and self._nodes[name].service is not None:
            raise ValueError(f"add_node: a node named {name!r} already exists; choose another name")
        for attr in ("compute_resource", "execution_time"):
            if not hasattr(service, attr):
                raise TypeError(f"add_node({name!r}, ...): the service has no {attr!r}; "
                                "subclass servicegrid.service.Service and set it in __init__")
        self._entry(name).service = service  # named by an edge first: its edges and resources stay
        self._fresh = False

    def add_edge(self, a: str, b: str) -> None:
        """Make ``b`` depend on ``a``; adding an existing edge is a no-op.

        An end that is not a node yet is created without a service, as networkx does, so the
        graph may be wired before its services are added; ``add_node`` later gives it one. A node
        still without a service counts as an empty step (its ``set_node_resource`` values, else
        0), and ``execute`` warns about it, naming a close node name in case of a typo.

        Raises:
            ValueError: the edge would close a cycle (the message names it: ``a -> b -> ... -> a``).
        """
        for end in (a, b):
            self._entry(end)
        if b in self._succ[a]:
            return
        path = self._path(b, a)
        if path is not None:
            raise ValueError(f"add_edge({a!r}, {b!r}) would create a cycle: "
                             + " -> ".join([a, *path]))
        self._succ[a].append(b)
        self._pred[b].append(a)
        self._fresh = False

    def set_node_resource(self, name: str, compute_resource: float | None = None,
                          execution_time: float | None = None) -> None:
        """Set a node's compute demand and/or execution time (the service object is unchanged)."""
        node = self._require(name, "set_node_resource")
        for label, value in (("compute_resource", compute_resource), ("execution_time", execution_time)):
            if value is not None and (not isinstance(value, int | float) or value < 0 or value != value):
                raise ValueError(f"set_node_resource({name!r}): {label} must be a number >= 0, got {value!r}")
        if compute_resource is not None:
            node.compute_resource = compute_resource
        if execution_time is not None:
            node.execution_time = execution_time
        self._fresh = False

    def _entry(self, name: str) -> _Node:
        """The node named ``name``, created without a service (and without edges) if new."""
        if name not in self._nodes:
            self._nodes[name] = _Node(None)
            self._succ[name] = []
            self._pred[name] = []
        return self._nodes[name]

    def _require(self, name: str, where: str) -> _Node:
        if name not in self._nodes:
            close = suggest(name, self._nodes)
            tip = f" Did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"{where}: there is no node named {name!r}.{tip} "
                             f"Add it first with graph.add_node({name!r}, service).")
        return self._nodes[name]

    def _path(self, start: str, goal: str) -> list[str] | None:
        """Nodes of a path start -> ... -> goal (breadth first, iterative), or None."""
        parent: dict[str, str | None] = {start: None}
        frontier = [start]
        while frontier:
            nxt = []
            for node in frontier:
                if node == goal:
                    path = [node]
                    while (p := parent[path[-1]]) is not None:
                        path.append(p)
                    return path[::-1]
                for child in self._succ[node]:
                    if child not in parent:
                        parent[child] = node
                        nxt.append(child)
            frontier = nxt
        return None

    # -- reading ----------------------------------------------------------------------------
    @property
    def nodes(self) -> list[str]:
        return list(self._nodes)

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(a, b) for a, targets in self._succ.items() for b in targets]

    def service(self, name: str) -> Any:
        """The service object added under ``name`` (None for a node only an edge named)."""
        return self._require(name, "service").service

    def node_resource(self, name: str) -> tuple[float, float]:
        """(compute_resource, execution_time) of a node as used by the graph."""
        node = self._require(name, "node_resource")
        return node.demand, node.duration

    def __len__(self) -> int:
        return len(self._nodes)

    def __repr__(self) -> str:
        return f"Graph({len(self._nodes)} nodes, {len(self.edges)} edges)"

    # -- the article's measures -------------------------------------------------------------
    def get_total_resource(self) -> float:
        """C_S: the sum of every node's compute demand."""
        return sum(node.demand for node in self._nodes.values())

    def get_total_time(self) -> float:
        """T_S: the sum of every node's execution time (the makespan of running them one by one)."""
        return sum(node.duration for node in self._nodes.values())

    # -- execution on a virtual clock -------------------------------------------------------
    def execute(self, capacity: float | None = None) -> list[str]:
        """Run the graph on a virtual clock (instant) and return the node names in start order.

        Every node starts once all its parents have finished and, with ``capacity``, only while
        the running demands fit in it (a list schedule, longest remaining path first).
        Services that define ``run`` are called in that order with their parents' results;
        ``schedule`` holds each node's (start, end) and ``results`` the values ``run`` returned.
        """
        self._warn_unadded()
        self._simulate(capacity)
        self.results = {}
        for name in self.order:
            service = self._nodes[name].service
            if isinstance(service, Service) and service.simulated:
                self.results[name] = None
                continue
            run = getattr(service, "run", None)
            inputs = {parent: self.results.get(parent) for parent in self._pred[name]}
            self.results[name] = run(inputs) if callable(run) else None
        return list(self.order)

    def _warn_unadded(self) -> None:
        added = [n for n, node in self._nodes.items() if node.service is not None]
        for name, node in self._nodes.items():
            if node.service is None:
                close = suggest(name, added)
                tip = f" Did you mean {close[0]!r}?" if close else ""
                warnings.warn(
                    f"node {name!r} was named by add_edge but never added, so it runs as an empty step "
                    f"({node.demand} compute units, {node.duration} minutes).{tip} Add its service with "
                    f"graph.add_node({name!r}, service).", UserWarning, stacklevel=3)

    def get_peak_resource(self) -> float:
        """The largest total demand running at one instant in the executed schedule.

        Counted as the simulation admits and releases nodes, so a zero-time service holds its
        demand only while others start at the same instant before it is released.
        """
        if not self._fresh:
            self._simulate(self._executed_capacity)
        return self._peak

    def get_makespan(self, capacity: float | None = None) -> float:
        """The time from the first start to the last end: the critical path length without a
        capacity, the list schedule's makespan with one."""
        if capacity is None:
            return critical_path(self._durations(), self.edges)[0]
        schedule, _ = self._list_schedule(capacity)
        return max((end for _, end in schedule.values()), default=0)

    def get_critical_path(self) -> list[str]:
        """The node names on the longest chain of dependent execution times."""
        return critical_path(self._durations(), self.edges)[1]

    def _durations(self) -> dict[str, float]:
        return {name: node.duration for name, node in self._nodes.items()}

    def _simulate(self, capacity: float | None) -> None:
        self.schedule, self._peak = self._list_schedule(capacity)
        index = {name: i for i, name in enumerate(topological_order(self._nodes, self.edges) or [])}
        self.order = sorted(self.schedule, key=lambda n: (self.schedule[n][0], index[n]))
        self._executed_capacity = capacity
        self._fresh = True

    def _list_schedule(self, capacity: float | None) -> tuple[dict[str, tuple[float, float]], float]:
        """Start and end of every node under ``capacity`` (None: unbounded), and the peak demand."""
        limit = float("inf") if capacity is None else capacity
        for name, node in self._nodes.items():
            if node.demand > limit + _EPS:
                raise ValueError(f"node {name!r} needs {node.demand} compute units but the capacity "
                                 f"is {capacity}; it can never run. Raise the capacity.")
        order = topological_order(self._nodes, self.edges) or []
        rank = self._bottom_levels(order)
        position = {name: i for i, name in enumerate(order)}
        waiting = {name: len(self._pred[name]) for name in order}
        ready = [name for name in order if waiting[name] == 0]
        running: list[tuple[float, int, str]] = []
        schedule: dict[str, tuple[float, float]] = {}
        now, used, peak = 0, 0, 0
        while ready or running:
            ready.sort(key=lambda n: (-rank[n], position[n]))
            for name in list(ready):
                node = self._nodes[name]
                if used + node.demand <= limit + _EPS:
                    ready.remove(name)
                    used += node.demand
                    peak = max(peak, used)
                    schedule[name] = (now, now + node.duration)
                    heapq.heappush(running, (now + node.duration, position[name], name))
            now, _, done = heapq.heappop(running)
            finished = [done]
            while running and running[0][0] <= now + _EPS:
                finished.append(heapq.heappop(running)[2])
            for name in finished:
                used -= self._nodes[name].demand
                for child in self._succ[name]:
                    waiting[child] -= 1
                    if waiting[child] == 0:
                        ready.append(child)
        return schedule, peak

    def _bottom_levels(self, order: list[str]) -> dict[str, float]:
        """Longest path from each node to a sink, including its own duration."""
        rank: dict[str, float] = {}
        for name in reversed(order):
            below = max((rank[c] for c in self._succ[name]), default=0)
            rank[name] = self._nodes[name].duration + below
        return rank

    # -- workflow files ---------------------------------------------------------------------
    def to_workflow(self, name: str = "graph", capacity: float | None = None) -> Workflow:
        """This graph as a workflow of ``sim.task`` nodes.

        Mapping (the article's units): ``execution_time`` minutes -> ``params.duration_s`` =
        ``execution_time * 60``; ``compute_resource`` GB -> ``resources.memory_mb`` =
        ``compute_resource * 1024`` with ``cpu: 0`` (memory is the only binding resource);
        ``capacity`` GB -> ``capacity.memory_mb``. Nodes are laid out in topological layers.
        """
        position = {}
        for x, layer in enumerate(layers(self._nodes, self.edges)):
            for y, node_id in enumerate(layer):
                position[node_id] = {"x": 80 + 240 * x, "y": 80 + 120 * y}
        nodes = [
            {"id": node_id, "agent": "sim.task",
             "label": type(node.service).__name__ if node.service is not None else node_id,
             "params": {"duration_s": node.duration * SECONDS_PER_UNIT},
             "resources": {"cpu": 0, "memory_mb": node.demand * MB_PER_UNIT},
             "position": position[node_id]}
            for node_id, node in self._nodes.items()
        ]
        data: dict[str, Any] = {
            "schema_version": 1, "name": name, "nodes": nodes,
            "edges": [{"source": a, "target": b} for a, b in self.edges],
            "metadata": {"source": "servicegrid.graph", "time_unit": "minute", "resource_unit": "GB"},
        }
        if capacity is not None:
            data["capacity"] = Capacity(memory_mb=capacity * MB_PER_UNIT).model_dump(exclude_defaults=True)
        return Workflow.model_validate(data)

    @classmethod
    def from_workflow(cls, workflow: Workflow, registry: Registry | None = None) -> Graph:
        """A graph of plain ``Service`` objects from a workflow (the inverse of ``to_workflow``).

        ``duration_s`` (or the agent's expected duration) becomes minutes and ``memory_mb``
        (the node's override, else the agent's default) becomes GB; ports are ignored; components
        are expanded (a node per agent inside them, ``instance/node``).
        """
        from engine.components import flatten

        workflow = flatten(workflow)
        graph = cls()
        sized = planned_items(workflow, registry) if registry is not None else None
        for node in workflow.nodes:
            memory_mb = node.resources.get("memory_mb")
            seconds = node.params.get("duration_s")
            if registry is not None and node.agent in registry:
                spec = registry.get(node.agent)
                if memory_mb is None:
                    memory_mb = spec.resources.memory_mb
                if seconds is None:
                    params = spec.parse_params(node.params)
                    seconds = sized.duration(node.id, spec, params) if sized else spec.expected_duration(params)
            service = Service(_tidy(float(memory_mb or 0) / MB_PER_UNIT),
                              _tidy(float(seconds or 0) / SECONDS_PER_UNIT))
            graph.add_node(node.id, service)
        for edge in workflow.edges:
            graph.add_edge(edge.source, edge.target)
        return graph


def _tidy(value: float) -> float:
    """Whole numbers as ints, so a round trip gives back ``3`` rather than ``3.0``."""
    return int(value) if float(value).is_integer() else value


def schedule_table(graph: Graph) -> list[Mapping[str, Any]]:
    """Rows (node, start, end, demand) of the last execution, in start order."""
    return [{"node": n, "start": graph.schedule[n][0], "end": graph.schedule[n][1],
             "demand": graph.node_resource(n)[0]} for n in graph.order]
