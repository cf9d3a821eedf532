"""The short lane: nodes of agents that measured under SHORT_S run one after another on one
worker (no GIL contention between workers); longer nodes still run in parallel beside them."""

from __future__ import annotations

from executor_kit import sleep, workflow

from engine.events import NodeStarted
from engine.executor import SHORT_S
from engine.runs import RunOptions


def _echo_layers(width: int, depth: int) -> tuple[list[dict], list[tuple[str, str]]]:
    nodes = [{"id": f"e{d}_{i}", "agent": "test.echo"} for d in range(depth) for i in range(width)]
    edges = [(f"e{d}_{i}", f"e{d + 1}_{i}") for d in range(depth - 1) for i in range(width)]
    return nodes, edges


def test_short_nodes_collapse_onto_one_worker(manager) -> None:
    m, rec = manager
    nodes, edges = _echo_layers(width=4, depth=50)  # 200 sub-millisecond nodes, 4 chains, 4 CPUs
    handle = m.submit(workflow(nodes, edges), RunOptions(policy="fifo", use_cache=False, predict=False))
    assert handle.wait(60) == "succeeded"
    snap = handle.snapshot()
    walls = [n["metrics"]["wall_s"] for n in snap.nodes.values()]
    assert sorted(walls)[len(walls) // 2] < SHORT_S, "the echo agent is short on this machine"
    workers = [e.worker for e in rec.of(handle.run_id, "NodeStarted")]
    late = workers[len(workers) // 2:]  # once measured short, one worker runs them
    top = max(set(late), key=late.count)
    assert late.count(top) >= 0.9 * len(late), {w: late.count(w) for w in set(late)}


def test_long_nodes_still_run_in_parallel_beside_the_lane(manager) -> None:
    m, rec = manager
    nodes, edges = _echo_layers(width=2, depth=60)
    nodes += [sleep(f"s{i}", 0.3, cpu=1) for i in range(2)]  # two long nodes, 2 of the 4 CPUs
    handle = m.submit(workflow(nodes, edges), RunOptions(policy="fifo", use_cache=False, predict=False))
    assert handle.wait(60) == "succeeded"
    snap = handle.snapshot()
    s0, s1 = snap.nodes["s0"], snap.nodes["s1"]
    assert s0["start"] < s1["end"] and s1["start"] < s0["end"], "the two long nodes overlapped"
    started = {e.node_id: e for e in rec.of(handle.run_id, "NodeStarted") if isinstance(e, NodeStarted)}
    assert started["s0"].worker != started["s1"].worker
    echo_during = [n for nid, n in snap.nodes.items() if nid.startswith("e")
                   and s0["start"] < n["start"] < s0["end"]]
    assert echo_during, "short nodes kept running while the long ones slept"
