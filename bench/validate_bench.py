"""Benchmark: validate() on a 10,000-node random layered DAG, against a bare networkx baseline;
and on a workflow of components against the same workflow expanded.

Run: ``python bench/validate_bench.py [--nodes 10000] [--repeat 5]``. Prints a table of medians and
the ratio validate / baseline, both measured in this run (no absolute targets, no asserts).
The baseline builds a networkx DiGraph and runs ``is_directed_acyclic_graph`` plus
``topological_sort`` over the same nodes and edges: the least any DAG check has to do.
The second table validates ``--nodes`` nodes drawn as instances of a 10-node component, against
validating its expansion (target: at most 2x, the expansion costing no more than one check).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import networkx as nx

from engine.registry import default_registry
from engine.resources import Capacity
from engine.validation import validate
from engine.workflow import Workflow, workflow_from_data

AGENTS = ("sim.task", "test.echo", "test.sleep", "test.hold_memory")


def layered_dag(nodes: int, width: int = 50, fan_in: int = 3, seed: int = 7) -> Workflow:
    """A random layered DAG: ``width`` nodes per layer, each fed by up to ``fan_in`` earlier nodes."""
    rng = random.Random(seed)
    ids = [f"n{i}" for i in range(nodes)]
    node_data = []
    for i, node_id in enumerate(ids):
        agent = "test.source" if i < width else rng.choice(AGENTS)
        node = {"id": node_id, "agent": agent, "position": {"x": 200 * (i // width), "y": 80 * (i % width)}}
        if agent == "sim.task":
            node["params"] = {"duration_s": rng.randint(1, 600)}
            node["resources"] = {"memory_mb": rng.choice([256, 512, 1024])}
        node_data.append(node)
    edges = []
    for i in range(width, nodes):
        layer_start = (i // width) * width
        for j in rng.sample(range(max(0, layer_start - 3 * width), layer_start), k=rng.randint(1, fan_in)):
            edges.append({"source": ids[j], "target": ids[i]})
    return workflow_from_data({"schema_version": 1, "name": f"bench-{nodes}", "nodes": node_data,
                               "edges": edges})


def networkx_baseline(workflow: Workflow) -> None:
    graph = nx.DiGraph()
    graph.add_nodes_from(n.id for n in workflow.nodes)
    graph.add_edges_from((e.source, e.target) for e in workflow.edges)
    assert nx.is_directed_acyclic_graph(graph)
    list(nx.topological_sort(graph))


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    registry = default_registry()
    capacity = Capacity(cpu=8, memory_mb=16_384, gpus=())
    workflow = layered_dag(args.nodes)
    issues = validate(workflow, registry, capacity)  # warm-up; also shows the workflow is clean
    errors = [i for i in issues if i.is_error]
    base = median_seconds(lambda: networkx_baseline(workflow), args.repeat)
    ours = median_seconds(lambda: validate(workflow, registry, capacity), args.repeat)
    print(f"workflow: {len(workflow.nodes):,} nodes, {len(workflow.edges):,} edges; "
          f"{len(errors)} error(s), {len(issues) - len(errors)} warning(s)")
    print(f"{'measure':<40} {'median s':>10} {'ratio':>8}")
    print(f"{'networkx DAG check + topo sort (baseline)':<40} {base:>10.4f} {1.0:>8.2f}")
    print(f"{'engine.validation.validate':<40} {ours:>10.4f} {ours / base:>8.2f}")
    components_table(args.nodes, args.repeat, registry, capacity)


def grouped(nodes: int) -> Workflow:
    """A source and ``nodes // 10`` chained instances of a 10-node chain of itemwise agents."""
    chain = {"name": "chain", "nodes": [{"id": f"s{i}", "agent": "test.tag"} for i in range(10)],
             "edges": [{"source": f"s{i}", "target": f"s{i + 1}"} for i in range(9)],
             "inputs": [{"name": "texts", "node": "s0"}], "outputs": [{"name": "texts", "node": "s9"}]}
    count = max(1, nodes // 10)
    return workflow_from_data({
        "schema_version": 1, "name": f"components-{nodes}", "components": [chain],
        "nodes": [{"id": "src", "agent": "test.texts"}] + [{"id": f"c{j}", "agent": "component:chain"}
                                                           for j in range(count)],
        "edges": [{"source": "src", "target": "c0"}] + [{"source": f"c{j}", "target": f"c{j + 1}"}
                                                        for j in range(count - 1)]})


def components_table(nodes: int, repeat: int, registry: object, capacity: Capacity) -> None:
    from engine.components import _RECENT, flatten

    drawn = grouped(nodes)
    flat = flatten(drawn)

    def cold() -> None:
        _RECENT.clear()  # measure the expansion too, as a first validation of a new edit does
        validate(drawn, registry, capacity)  # type: ignore[arg-type]

    base = median_seconds(lambda: validate(flat, registry, capacity), repeat)  # type: ignore[arg-type]
    ours = median_seconds(cold, repeat)
    print(f"\ncomponents: {len(drawn.nodes):,} drawn nodes, {len(flat.nodes):,} when expanded")
    print(f"{'measure':<40} {'median s':>10} {'ratio':>8}")
    print(f"{'validate the expansion (baseline)':<40} {base:>10.4f} {1.0:>8.2f}")
    print(f"{'validate the components (expanding)':<40} {ours:>10.4f} {ours / base:>8.2f}")


if __name__ == "__main__":
    main()
