"""Run history: filtered lists, thinned samples, runs a dead process left behind, retention."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from event_streams import run_stream
from sqlalchemy import func
from sqlmodel import Session, select

from engine import events as ev
from storage import Store
from storage.ingest import HOST
from storage.models import EventRecord, MetricSampleRecord, NodeRunRecord, RunRecord

Record = Callable[[Store, list[ev.Event]], None]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _set_owner(store: Store, run_id: str, *, pid: int | None, host: str | None = HOST) -> None:
    with Session(store.engine) as session:
        row = session.get(RunRecord, run_id)
        assert row is not None
        row.pid, row.host = pid, host
        session.commit()


def _count(store: Store, table: type, run_id: str) -> int:
    with Session(store.engine) as session:
        return session.exec(select(func.count()).select_from(table).where(table.run_id == run_id)).one()


def test_list_runs_filters(store: Store, record: Record) -> None:
    record(store, run_stream("a", t0=100.0, user="ada", workflow_name="alpha"))
    record(store, run_stream("b", t0=200.0, user="bob", workflow_name="alpha", status="failed"))
    record(store, run_stream("c", t0=300.0, user="ada", workflow_name="beta"))
    assert [r.id for r in store.list_runs()] == ["c", "b", "a"]  # newest first
    assert [r.id for r in store.list_runs(workflow="alpha")] == ["b", "a"]
    assert [r.id for r in store.list_runs(status="failed")] == ["b"]
    assert [r.id for r in store.list_runs(user="ada")] == ["c", "a"]
    assert [r.id for r in store.list_runs(since=150.0, until=250.0)] == ["b"]
    assert [r.id for r in store.list_runs(since=datetime.fromtimestamp(250.0, tz=UTC))] == ["c"]
    assert [r.id for r in store.list_runs(limit=1)] == ["c"]
    a = store.list_runs(workflow="alpha")[1]
    assert a.duration_s == a.finished - a.started > 0  # type: ignore[operator]
    assert a.to_dict()["node_counts"] == {"done": 2}
    assert store.get_run("missing") is None


def test_samples_are_thinned_evenly(store: Store, record: Record) -> None:
    samples = [ev.MetricSampled(run_id="s", time=float(i), cpu_percent=float(i), rss_mb=1.0) for i in range(1000)]
    record(store, samples[::-1])  # stored out of order: returned by time
    assert [x.time for x in store.run_samples("s")] == [float(i) for i in range(1000)]
    thin = store.run_samples("s", max_points=100)
    times = [x.time for x in thin]
    assert len(times) == 100 and times[0] == 0.0 and times[-1] == 999.0
    assert times == sorted(set(times))
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert max(gaps) - min(gaps) <= 1.0  # evenly spread


def test_mark_interrupted_finds_runs_of_dead_processes(store: Store, record: Record) -> None:
    record(store, run_stream("done", ("a",)))
    # the process died with a finished, b running and c never started (no RunFinished)
    half = [e for e in run_stream("dead", ("a", "b", "c")) if e.node_id == "a" or isinstance(e, ev.RunStarted)]
    half.append(ev.NodeStarted(run_id="dead", node_id="b", device="cpu", attempt=1, threads=1, demand={}))
    record(store, half)
    record(store, run_stream("alive", ("a",))[:3])  # this process is alive
    record(store, run_stream("elsewhere", ("a",))[:3])
    _set_owner(store, "dead", pid=_dead_pid())
    _set_owner(store, "elsewhere", pid=1, host="another-host")
    assert store.get_run("dead").node("b").status == "running"  # type: ignore[union-attr]

    assert store.mark_interrupted() == ["dead"]
    run = store.get_run("dead")
    assert run is not None and run.status == "interrupted" and run.summary.finished is not None
    assert "resume" in (run.summary.error or "")
    states = {n.node_id: n.status for n in run.nodes}
    assert states == {"a": "done", "b": "interrupted", "c": "pending"}
    assert run.node("a").wall_s == 0.8  # type: ignore[union-attr]  # finished records untouched
    assert store.get_run("alive").status == "running"  # type: ignore[union-attr]
    assert store.get_run("done").status == "succeeded"  # type: ignore[union-attr]
    assert store.mark_interrupted() == []  # idempotent
    assert store.mark_interrupted(all_hosts=True) == ["elsewhere"]


def test_run_without_owner_counts_as_dead(store: Store, record: Record) -> None:
    record(store, run_stream("orphan")[:2])
    _set_owner(store, "orphan", pid=None)
    assert store.mark_interrupted() == ["orphan"]
    _set_owner(store, "orphan", pid=os.getpid())  # no effect any more: it is no longer running
    assert store.mark_interrupted() == []


def test_prune_by_count_and_age(store: Store, record: Record) -> None:
    now = time.time()
    record(store, run_stream("old", t0=now - 40 * 86400))
    record(store, run_stream("mid", t0=now - 10 * 86400))
    record(store, run_stream("new", t0=now - 60))
    record(store, run_stream("running", t0=now - 90 * 86400)[:3])  # active runs are never pruned
    assert store.prune(keep_days=30) == 1
    assert {r.id for r in store.list_runs()} == {"mid", "new", "running"}
    for table in (EventRecord, MetricSampleRecord, NodeRunRecord):
        assert _count(store, table, "old") == 0
        assert _count(store, table, "mid") > 0
    assert store.prune(keep_runs=1) == 1  # "running" is the oldest but stays; "new" is newest
    assert {r.id for r in store.list_runs()} == {"new", "running"}
    assert store.prune() == 0
    assert store.integrity_check()


def test_prune_dry_run_deletes_nothing_and_negative_limits_are_refused(store: Store, record: Record) -> None:
    now = time.time()
    record(store, run_stream("old", t0=now - 40 * 86400))
    record(store, run_stream("new", t0=now - 60))
    assert store.prune(keep_days=30, dry_run=True) == 1
    assert store.prune(keep_runs=0, dry_run=True) == 2
    for keep in ({"keep_days": -3}, {"keep_days": float("nan")}, {"keep_runs": -1}):
        with pytest.raises(ValueError, match=">= 0"):
            store.prune(**keep)
    assert {r.id for r in store.list_runs()} == {"old", "new"}  # nothing went


def test_integrity_check_detects_a_damaged_file(db_url: str, tmp_path, record: Record) -> None:  # type: ignore[no-untyped-def]
    store = Store(db_url)
    record(store, [ev.NodeLog(run_id="big", node_id=f"n{i}", message="x" * 200) for i in range(400)])
    assert store.integrity_check()
    store.close()
    path = tmp_path / "store.db"
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(len(data) // 2 // page * page, len(data) - page, page):
        data[offset + 100: offset + 140] = b"\xff" * 40  # scribble over b-tree cells past the header
    path.write_bytes(bytes(data))
    damaged = Store(db_url, migrate=False)
    assert damaged.integrity_check() is False
    damaged.close()


_CHILD = """
import os, sys
sys.path.insert(0, {tests!r})
from event_streams import emit, run_stream
from storage import Store
store = Store({url!r})
events = run_stream({run_id!r}, ("a", "b"))
emit(store, events[:7] if {crash!r} else events)  # a done, b started; or the whole run
if {crash!r}:
    assert store.flush(timeout=30)
    os._exit(0)  # die like a killed server: no atexit, no close()
# a normal exit without close(): the store still writes what it holds
"""


def test_a_crashed_process_leaves_an_interrupted_run(db_url: str) -> None:
    from pathlib import Path

    tests = str(Path(__file__).parent)
    for run_id, crash in (("crashed", True), ("exited", False)):
        code = _CHILD.format(tests=tests, url=db_url, run_id=run_id, crash=crash)
        subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    with Store(db_url) as store:
        assert store.get_run("exited").status == "succeeded"  # type: ignore[union-attr]
        assert store.get_run("crashed").status == "running"  # type: ignore[union-attr]
        assert store.mark_interrupted() == ["crashed"]
        run = store.get_run("crashed")
        assert run is not None and run.status == "interrupted"
        assert {n.node_id: n.status for n in run.nodes} == {"a": "done", "b": "interrupted"}
