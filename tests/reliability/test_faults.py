"""Faults: an agent that raises, hangs, exceeds its memory or dies; cancel at random moments;
the server killed with SIGKILL mid-run, restarted and resumed. Every check reads the database."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from faults import node_records, recorded_manager, sleep, workflow

from engine.events import RunStatus
from engine.runs import RunOptions
from engine.workflow import Workflow
from storage import Store

TERMINAL = {"done", "cached", "failed", "skipped", "cancelled", "interrupted"}


def test_an_agent_that_raises_is_recorded_its_descendants_skipped_others_finish(tmp_path: Path) -> None:
    wf = workflow([sleep("a"), {"id": "bad", "agent": "test.fail", "params": {"message": "boom"}},
                   sleep("child"), sleep("grandchild"), sleep("other", 0.05), sleep("other2")],
                  [("a", "bad"), ("bad", "child"), ("child", "grandchild"), ("a", "other"), ("other", "other2")])
    with recorded_manager(tmp_path) as (m, store):
        h = m.submit(wf)
        assert h.wait(30) == RunStatus.FAILED
        store.flush()
        rec = node_records(store, h.run_id)
        assert store.get_run(h.run_id).status == "failed"
    assert rec["bad"]["status"] == "failed"
    assert "boom" in rec["bad"]["error_message"] and rec["bad"]["error_type"]
    assert rec["child"]["status"] == rec["grandchild"]["status"] == "skipped"
    assert {rec[n]["status"] for n in ("a", "other", "other2")} == {"done"}


@pytest.mark.parametrize("isolate", [False, True])
def test_a_node_hanging_past_its_timeout_fails_with_timeout(tmp_path: Path, isolate: bool) -> None:
    hang = {"id": "hang", "agent": "test.hang", "params": {"ignore_cancel": isolate},
            "lifecycle": {"execution": {"timeout_s": 0.5, "isolate": isolate}}}
    with recorded_manager(tmp_path) as (m, store):
        h = m.submit(workflow([hang, sleep("free")]))
        assert h.wait(60) == RunStatus.FAILED
        store.flush()
        rec = node_records(store, h.run_id)
    assert rec["hang"]["status"] == "failed"
    assert "timeout" in (rec["hang"]["error_message"] + rec["hang"]["error_type"]).lower()
    assert rec["free"]["status"] == "done"


def test_an_isolated_node_that_over_allocates_is_killed_and_recorded(tmp_path: Path) -> None:
    """An isolated node that grows far past its declared memory is stopped (MemoryLimitExceeded),
    its descendants are skipped, and an independent node still finishes."""
    greedy = {"id": "greedy", "agent": "test.hold_memory", "params": {"mb": 256, "seconds": 5},
              "resources": {"memory_mb": 16}, "lifecycle": {"execution": {"isolate": True}}}
    after = {"id": "after", "agent": "test.echo"}
    free = {"id": "free", "agent": "test.sleep", "params": {"seconds": 0.05}}
    with recorded_manager(tmp_path) as (m, store):
        h = m.submit(workflow([greedy, after, free], [("greedy", "after")]))
        assert h.wait(60) == RunStatus.FAILED
        store.flush()
        rec = node_records(store, h.run_id)
    assert rec["greedy"]["status"] == "failed"
    assert rec["greedy"]["error_type"] == "MemoryLimitExceeded"
    assert "declared memory" in rec["greedy"]["error_message"]
    assert rec["after"]["status"] == "skipped"
    assert rec["free"]["status"] == "done"


def test_an_isolated_node_within_its_declared_memory_finishes(tmp_path: Path) -> None:
    node = {"id": "modest", "agent": "test.hold_memory", "params": {"mb": 32, "seconds": 0.3},
            "resources": {"memory_mb": 64}, "lifecycle": {"execution": {"isolate": True}}}
    with recorded_manager(tmp_path) as (m, store):
        h = m.submit(workflow([node]))
        assert h.wait(60) == RunStatus.SUCCEEDED
        store.flush()
        rec = node_records(store, h.run_id)["modest"]
    assert rec["status"] == "done"
    assert rec["peak_rss_mb"] is not None and rec["peak_rss_mb"] > 32


def _node_process(timeout: float = 30.0) -> psutil.Process:
    """The isolated node's process: a child of this process's forkserver."""
    me = psutil.Process()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in me.children():
            if "forkserver" in " ".join(child.cmdline()):
                grandchildren = child.children()
                if grandchildren:
                    return grandchildren[-1]
        time.sleep(0.05)
    raise AssertionError("no isolated node process appeared")


def test_an_isolated_node_whose_process_is_killed_fails_clearly(tmp_path: Path) -> None:
    node = {"id": "victim", "agent": "test.hold_memory", "params": {"mb": 1, "seconds": 60},
            "lifecycle": {"execution": {"isolate": True}}}
    with recorded_manager(tmp_path) as (m, store):
        h = m.submit(workflow([node, sleep("after", 0.01)], [("victim", "after")]))
        _node_process().send_signal(signal.SIGKILL)
        assert h.wait(60) == RunStatus.FAILED
        store.flush()
        rec = node_records(store, h.run_id)
    assert rec["victim"]["status"] == "failed"
    assert "killed by signal SIGKILL" in rec["victim"]["error_message"]
    assert rec["after"]["status"] == "skipped"


def _cancel_workflow(seed: int) -> Workflow:
    rng = random.Random(seed)
    nodes = [sleep(f"n{i}", rng.uniform(0.01, 0.15), resources={"cpu": rng.choice([1, 2])}) for i in range(12)]
    edges = [(f"n{j}", f"n{i}") for i in range(1, 12) for j in range(i) if rng.random() < 0.2]
    return workflow(nodes, edges)


def test_cancel_at_random_moments_leaves_consistent_records(tmp_path: Path) -> None:
    rng = random.Random(7)
    with recorded_manager(tmp_path) as (m, store):
        handles = []
        for seed in range(8):
            h = m.submit(_cancel_workflow(seed), RunOptions(use_cache=False))
            time.sleep(rng.uniform(0.0, 0.4))
            h.cancel()
            handles.append(h)
        ends = [h.wait(30) for h in handles]
        assert set(ends) <= {RunStatus.CANCELLED, RunStatus.SUCCEEDED}
        assert RunStatus.CANCELLED in ends  # the random moments did catch runs mid-way
        assert store.flush(20)
        for h in handles:
            snap = h.snapshot()
            detail = store.get_run(h.run_id)
            assert detail.status == snap.status
            rec = node_records(store, h.run_id)
            assert set(rec) == set(snap.nodes), "a node record is missing"
            assert {n["status"] for n in rec.values()} <= TERMINAL
            assert {k: v["status"] for k, v in rec.items()} == {k: v["status"] for k, v in snap.nodes.items()}


KILL_DRIVER = """
import sys
from servicegrid.cli import main
sys.exit(main(["run", sys.argv[1], "--json"]))
"""


def _kill_workflow(path: Path) -> None:
    nodes = [sleep("a", 0.05), sleep("b", 0.05), sleep("c", 0.05), sleep("slow", 3.0), sleep("last", 0.01)]
    path.write_text(json.dumps({"schema_version": 1, "name": "killed", "capacity": {"cpu": 2, "memory_mb": 2048, "gpus": []},
                                "nodes": nodes, "edges": [{"source": s, "target": t} for s, t in
                                                          [("a", "b"), ("b", "c"), ("c", "slow"), ("slow", "last")]]}))


def _wait_for(store: Store, predicate: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = store.list_runs()
        if runs and (found := predicate(runs[0])):
            return found
        time.sleep(0.05)
    raise AssertionError("the subprocess never reached the expected state")


@pytest.mark.slow
def test_sigkill_mid_run_then_restart_marks_interrupted_keeps_records_and_resumes(tmp_path: Path) -> None:
    from faults import MACHINE

    from engine.results import ResultStore
    from engine.runs import RunManager

    url = f"sqlite:///{tmp_path / 'server.db'}"
    env = {**os.environ, "SERVICEGRID_DATA_DIR": str(tmp_path / "data"), "SERVICEGRID_DATABASE_URL": url}
    _kill_workflow(tmp_path / "wf.json")
    server = subprocess.Popen([sys.executable, "-c", KILL_DRIVER, str(tmp_path / "wf.json")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        watcher = Store(url)

        def slow_started(run: Any) -> Any:
            rec = node_records(watcher, run.id)
            return run.id if rec.get("slow", {}).get("status") == "running" and \
                all(rec.get(n, {}).get("status") == "done" for n in "abc") else None

        run_id = _wait_for(watcher, slow_started)
        before = node_records(watcher, run_id)
        server.send_signal(signal.SIGKILL)
        server.wait(10)
        watcher.close()
    finally:
        if server.poll() is None:
            server.kill()
    restarted = Store(url)
    try:
        assert restarted.integrity_check()
        assert restarted.mark_interrupted() == [run_id]
        detail = restarted.get_run(run_id)
        after = node_records(restarted, run_id)
        assert detail.status == "interrupted" and "resume" in detail.summary.error
        finished = [n for n, r in before.items() if r["status"] == "done"]
        assert sorted(finished) == ["a", "b", "c"]
        assert {n: after[n] for n in finished} == {n: before[n] for n in finished}, "a finished record changed"
        assert after["slow"]["status"] == "interrupted"
        assert set(after) == set(before)  # zero lost node records
        manager = RunManager(machine=MACHINE, results=ResultStore(tmp_path / "data" / "results"), sample_hz=5)
        manager.bus.subscribe(restarted.observer())
        try:
            wf = Workflow.model_validate(detail.workflow)
            h = manager.submit(wf, RunOptions(resume_from=run_id))
            assert h.wait(60) == RunStatus.SUCCEEDED
        finally:
            manager.shutdown()
        restarted.flush()
        resumed = node_records(restarted, h.run_id)
        assert {n: resumed[n]["status"] for n in "abc"} == {"a": "cached", "b": "cached", "c": "cached"}
        assert resumed["slow"]["status"] == resumed["last"]["status"] == "done"
        assert {e.node_id for e in restarted.run_events(h.run_id, ["NodeStarted"])} == {"slow", "last"}
        assert restarted.integrity_check()
        print(f"killed run {run_id}: records before kill {len(before)} "
              f"({len(finished)} done), after restart {len(after)}; resumed run {h.run_id}: "
              f"{sum(r['status'] == 'cached' for r in resumed.values())} cached, 2 recomputed")
    finally:
        restarted.close()
