"""Load: twenty concurrent runs share one capacity through one RunManager with zero over-commit,
checked from the events recorded in the database; store attached vs detached wall times reported."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from pathlib import Path

from faults import MACHINE, recorded_manager, workflow

from engine.events import Event, NodeStarted, RunStatus
from engine.resources import EPS, ResourceDemand, ResourceLedger
from engine.runs import RunManager, RunOptions
from engine.workflow import Workflow

TERMINAL_KINDS = {"NodeFinished", "NodeFailed", "NodeCancelled", "NodeSkipped"}
RUNS = 20


def _student_workflow(seed: int) -> Workflow:
    rng = random.Random(seed)
    nodes = [{"id": f"n{i}", "agent": rng.choice(["test.sleep", "test.hold_memory"]),
              "params": {"seconds": rng.uniform(0.01, 0.06)},
              "resources": {"cpu": rng.choice([1, 2]), "memory_mb": rng.choice([256, 512, 1024, 2048])}}
             for i in range(6)]
    for n in nodes:
        if n["agent"] == "test.hold_memory":
            n["params"]["mb"] = 1
    edges = [(f"n{j}", f"n{i}") for i in range(1, 6) for j in range(i) if rng.random() < 0.3]
    return workflow(nodes, edges, name=f"student-{seed}")


def peak_use(events: list[Event]) -> tuple[dict[str, float], int]:
    """Sweep line over NodeStarted / terminal events in time order: peak use per resource, peak nodes."""
    order = sorted(events, key=lambda e: (e.time, 0 if e.kind in TERMINAL_KINDS else 1))
    used: dict[str, float] = defaultdict(float)
    peak: dict[str, float] = defaultdict(float)
    holding: dict[tuple[str, str], dict[str, float]] = {}
    top = 0
    for e in order:
        key = (e.run_id, e.node_id or "")
        if isinstance(e, NodeStarted):
            holding[key] = ResourceLedger.needs(ResourceDemand.model_validate(e.demand), e.device)
            for k, v in holding[key].items():
                used[k] += v
                peak[k] = max(peak[k], used[k])
            top = max(top, len(holding))
        elif e.kind in TERMINAL_KINDS and key in holding:
            for k, v in holding.pop(key).items():
                used[k] -= v
    return dict(peak), top


def _submit_concurrently(m: RunManager) -> list[str]:
    """Twenty 'browser sessions' submit at once from their own threads."""
    ids: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(RUNS)

    def session(seed: int) -> None:
        barrier.wait()
        h = m.submit(_student_workflow(seed), RunOptions(use_cache=False, predict=False, user=f"student{seed}"))
        with lock:
            ids.append(h.run_id)

    threads = [threading.Thread(target=session, args=(s,)) for s in range(RUNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return ids


def test_twenty_concurrent_runs_share_one_capacity_without_over_commit(tmp_path: Path) -> None:
    with recorded_manager(tmp_path) as (m, store):
        start = time.perf_counter()
        ids = _submit_concurrently(m)
        assert len(ids) == RUNS
        assert all(m.wait(rid, 120) == RunStatus.SUCCEEDED for rid in ids)
        wall = time.perf_counter() - start
        assert store.flush(30)
        events = [e for rid in ids for e in store.run_events(rid, ["NodeStarted", *TERMINAL_KINDS])]
        runs = store.list_runs(limit=100)
    started = [e for e in events if isinstance(e, NodeStarted)]
    assert len(started) == RUNS * 6, "every node of every run started exactly once"
    assert len({(e.run_id, e.node_id) for e in started}) == RUNS * 6
    peak, top = peak_use(events)
    assert peak["cpu"] <= MACHINE.cpu + EPS, f"cpu over-committed: {peak['cpu']}"
    assert peak["memory_mb"] <= MACHINE.memory_mb + EPS, f"memory over-committed: {peak['memory_mb']}"
    assert top >= 2, "runs did share the machine concurrently"
    assert {r.user for r in runs} == {f"student{s}" for s in range(RUNS)}
    print(f"\nload: {RUNS} runs, {len(started)} nodes in {wall:.2f} s; peak cpu {peak['cpu']:g}/{MACHINE.cpu:g}, "
          f"peak memory {peak['memory_mb']:g}/{MACHINE.memory_mb:g} MB, max {top} nodes at once")


def _timed_batch(tmp: Path, attach: bool) -> float:
    with recorded_manager(tmp, attach_store=attach) as (m, _store):
        start = time.perf_counter()
        handles = [m.submit(_student_workflow(s), RunOptions(use_cache=False, predict=False)) for s in range(10)]
        for h in handles:
            h.wait(120)
        return time.perf_counter() - start


def test_database_writes_do_not_block_execution_report(tmp_path: Path) -> None:
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    detached = _timed_batch(tmp_path / "off", attach=False)
    attached = _timed_batch(tmp_path / "on", attach=True)
    assert attached > 0 and detached > 0
    print(f"\nten runs: {attached:.2f} s with the store attached, {detached:.2f} s detached "
          f"(ratio {attached / detached:.2f}); the recorder only enqueues on engine threads")
