"""The short lane: CPU-bound nodes of agents that measured under SHORT_S run one after another on
one worker (no GIL contention between workers); longer or waiting nodes run in parallel."""

from __future__ import annotations

from typing import Any

from executor_kit import sleep, workflow

from engine.executor import CPU_BOUND, SHORT_S, Executor
from engine.runs import RunOptions

OPTIONS = RunOptions(policy="fifo", use_cache=False, predict=False)


def _echo_layers(width: int, depth: int) -> tuple[list[dict], list[tuple[str, str]]]:
    nodes = [{"id": f"e{d}_{i}", "agent": "test.echo"} for d in range(depth) for i in range(width)]
    edges = [(f"e{d}_{i}", f"e{d + 1}_{i}") for d in range(depth - 1) for i in range(width)]
    return nodes, edges


def _echo_is_short(monkeypatch: Any) -> None:
    """These two tests are about the lane, not about the measurement that feeds it (a loaded
    machine can inflate a no-op's wall time): echo nodes count as short and CPU-bound."""
    monkeypatch.setattr(Executor, "_is_short", lambda self, ns: ns.spec.name == "test.echo")


def test_short_nodes_collapse_onto_one_worker(manager, monkeypatch) -> None:
    _echo_is_short(monkeypatch)
    m, rec = manager
    nodes, edges = _echo_layers(width=4, depth=50)  # 200 nodes in 4 chains on 4 CPUs
    handle = m.submit(workflow(nodes, edges), OPTIONS)
    assert handle.wait(60) == "succeeded"
    assert all(n["status"] == "done" for n in handle.snapshot().nodes.values())
    workers = [e.worker for e in rec.of(handle.run_id, "NodeStarted")]
    assert len(workers) == 200
    top = max(set(workers), key=workers.count)
    assert workers.count(top) >= 0.9 * len(workers), {w: workers.count(w) for w in set(workers)}


def test_long_nodes_still_run_in_parallel_beside_the_lane(manager, monkeypatch) -> None:
    _echo_is_short(monkeypatch)
    m, rec = manager
    nodes, edges = _echo_layers(width=2, depth=60)
    nodes += [sleep(f"s{i}", 0.3, cpu=1) for i in range(2)]  # two long nodes, 2 of the 4 CPUs
    handle = m.submit(workflow(nodes, edges), OPTIONS)
    assert handle.wait(60) == "succeeded"
    snap = handle.snapshot()
    s0, s1 = snap.nodes["s0"], snap.nodes["s1"]
    assert s0["start"] < s1["end"] and s1["start"] < s0["end"], "the two long nodes overlapped"
    started = {e.node_id: e for e in rec.of(handle.run_id, "NodeStarted")}
    assert started["s0"].worker != started["s1"].worker
    assert any(s0["start"] < n["start"] < s0["end"] for nid, n in snap.nodes.items() if nid.startswith("e")), \
        "short nodes kept running while the long ones slept"


def test_short_sleeping_nodes_stay_parallel(manager) -> None:
    """A short node that waits (sleep, I/O) holds no GIL: it keeps running beside the others."""
    m, rec = manager
    nodes = [sleep(f"s{d}_{i}", 0.0001, cpu=1) for d in range(30) for i in range(4)]
    edges = [(f"s{d}_{i}", f"s{d + 1}_{i}") for d in range(29) for i in range(4)]
    handle = m.submit(workflow(nodes, edges), OPTIONS)
    assert handle.wait(60) == "succeeded"
    workers = [e.worker for e in rec.of(handle.run_id, "NodeStarted")]
    late = workers[len(workers) // 2:]
    assert len(set(late)) > 1 and max(late.count(w) for w in set(late)) < 0.9 * len(late), late


class _Spec:
    name = "x"


class _Node:
    def __init__(self, spec: Any, isolate: bool = False) -> None:
        self.spec, self.isolate, self.cache_hit, self.device = spec, isolate, False, "cpu"


def test_what_counts_as_short(manager) -> None:
    ex = manager[0].executor
    fast, sleepy, slow = (_Node(_Spec()) for _ in range(3))
    isolated = _Node(_Spec(), isolate=True)
    assert not ex._is_short(fast), "nothing measured yet: not short"
    for _ in range(5):
        ex._note_wall(fast, 30e-6, 20e-6)  # Python work: most of the wall on the CPU
        ex._note_wall(sleepy, 160e-6, 12e-6)  # a 0.1 ms sleep: short but waiting
        ex._note_wall(slow, 10 * SHORT_S, 10 * SHORT_S)  # CPU-bound but long
        ex._note_wall(isolated, 30e-6, 30e-6)
    assert ex._is_short(fast)
    assert CPU_BOUND * 160e-6 > 12e-6 and not ex._is_short(sleepy)
    assert not ex._is_short(slow) and not ex._is_short(isolated)
    for _ in range(30):  # the agent got slower: it leaves the lane
        ex._note_wall(fast, 2 * SHORT_S, 2 * SHORT_S)
    assert not ex._is_short(fast)
