"""The store as a run observer: events become run, node-run, event and sample rows, in batches,
off the caller's thread, with nothing lost under concurrency or transient database errors."""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

import pytest
from event_streams import emit, run_stream

from engine import events as ev
from storage import Store
from storage.ingest import BatchWriter
from storage.recorder import EventRecorder

Record = Callable[[Store, list[ev.Event]], None]


def test_event_stream_becomes_rows(store: Store, record: Record) -> None:
    events = run_stream("r1", ("pre", "cls"), user="ada")
    record(store, events)
    run = store.get_run("r1")
    assert run is not None
    s = run.summary
    assert (s.status, s.workflow_name, s.policy, s.backend, s.user) == ("succeeded", "two-stage", "fifo", "local", "ada")
    assert (s.created, s.started, s.finished) == (1000.0, 1000.0, events[-1].time)
    assert s.predicted_makespan_s == 4.0
    assert s.node_counts == {"done": 2}
    assert run.capacity == {"cpu": 2, "memory_mb": 4096}
    assert run.options == {"time_scale": 1.0}
    assert [n["id"] for n in run.workflow["nodes"]] == ["pre", "cls"]
    assert [n.node_id for n in run.nodes] == ["pre", "cls"]  # workflow order
    cls = run.node("cls")
    assert cls is not None
    assert (cls.agent, cls.status, cls.device, cls.worker, cls.attempts) == ("sim.task", "done", "cpu", "w0", 1)
    assert (cls.queued_at, cls.started_at, cls.finished_at) == (1001.1, 1001.2, 1002.0)
    assert (cls.wait_inputs_s, cls.wait_resource_s, cls.wall_s, cls.cpu_s) == (0.1, 0.05, 0.8, 0.7)
    assert (cls.peak_rss_mb, cls.peak_gpu_mb, cls.items) == (120.0, None, 11)
    assert cls.wait_resource == {"cpu": 0.05}
    assert cls.metrics["queue_s"] == 0.1 and cls.metrics["custom_metric"] == 1 and cls.metrics["threads"] == 1
    assert cls.output_summary == {"out": "tensor[4]"}
    stored = store.run_events("r1")
    assert [e.kind for e in stored] == [e.kind for e in events]
    assert stored == events  # payloads round-trip to the same event objects
    samples = store.run_samples("r1")
    assert [(x.time, x.cpu_percent) for x in samples] == [(1000.5, 50.0), (1001.5, 51.0)]
    assert samples[1].per_node == {"cls": {"cpu_percent": 40.0}}


def test_a_node_changed_during_the_run_is_recorded_with_what_it_ran_with(store: Store, record: Record) -> None:
    """``NodeAmended`` (edit and continue): the stored run's workflow has the node's new settings,
    the event itself says what changed, and an exported run file carries both."""
    from storage.transfer import parse_run_file, run_document

    events = run_stream("am", ("pre", "cls"))
    changed = {"id": "cls", "agent": "sim.task", "params": {"duration_s": 3}}
    events.insert(2, ev.NodeAmended(run_id="am", node_id="cls", time=1000.15, changes=("duration_s 1 -> 3",),
                                    node=changed))
    record(store, events)
    run = store.get_run("am")
    assert run is not None
    assert [n["params"] for n in run.workflow["nodes"]] == [{"duration_s": 1}, {"duration_s": 3}]
    (stored,) = store.run_events("am", ["NodeAmended"])
    assert stored.changes == ("duration_s 1 -> 3",) and stored.node == changed
    again = parse_run_file(run_document(run, store.run_events("am"), store.run_samples("am")))
    assert [e for e in again if e.kind == "NodeAmended"] == [stored]


def test_a_failed_node_retried_by_hand_is_no_longer_failed_in_the_record(store: Store, record: Record) -> None:
    """Pause on failure: a node failed, the run held it, a person retried it and it finished: its
    row ends done (not failed), and the failure stays in the events."""
    events = run_stream("rt", ("pre", "cls"))
    finished = next(i for i, e in enumerate(events) if isinstance(e, ev.NodeFinished) and e.node_id == "cls")
    done = events[finished]
    events[finished:finished] = [
        ev.NodeFailed(run_id="rt", node_id="cls", time=done.time - 0.5, error_type="RuntimeError", message="bad rule",
                      traceback="", metrics={}),
        ev.NodeRetried(run_id="rt", node_id="cls", time=done.time - 0.4, attempt=1, error_type="RuntimeError",
                       message="bad rule", delay_s=0.0, by_hand=True),
        ev.NodeStarted(run_id="rt", node_id="cls", time=done.time - 0.3, device="cpu", attempt=1, threads=1,
                       demand={"cpu": 1}, worker="w0")]
    record(store, events[:finished + 2])  # failed, then retried: queued again, no end time
    node = store.get_run("rt").node("cls")  # type: ignore[union-attr]
    assert (node.status, node.finished_at) == ("queued", None)
    record(store, events[finished + 2:])
    node = store.get_run("rt").node("cls")  # type: ignore[union-attr]
    assert (node.status, node.finished_at) == ("done", done.time)
    assert [e.kind for e in store.run_events("rt", ["NodeFailed", "NodeRetried"])] == ["NodeFailed", "NodeRetried"]


def test_failures_retries_skips_and_cancels(store: Store, record: Record) -> None:
    nodes = ("a", "b", "c", "d")
    events: list[ev.Event] = [
        ev.RunStarted(run_id="r", time=1.0, workflow_name="w", policy="fifo", backend="local",
                      capacity={}, node_ids=nodes),
        ev.NodeWaitingInputs(run_id="r", node_id="b", time=1.1, waiting_for=("a",)),
        ev.NodeWaitingResource(run_id="r", node_id="d", time=1.1, resource="memory_mb", held_by=("a",)),
        ev.NodeStarted(run_id="r", node_id="a", time=1.2, device="cpu", attempt=1, threads=1, demand={}),
        ev.NodeRetried(run_id="r", node_id="a", time=1.3, attempt=1, error_type="OSError", message="flaky",
                       delay_s=0.1),
        ev.NodeStarted(run_id="r", node_id="a", time=1.4, device="cpu", attempt=2, threads=1, demand={}),
        ev.NodeFailed(run_id="r", node_id="a", time=1.5, error_type="ValueError", message="bad input",
                      traceback="Traceback ...", metrics={"wall_s": 0.1, "attempts": 2}),
        ev.NodeSkipped(run_id="r", node_id="b", time=1.5, reason="upstream 'a' failed"),
        ev.NodeCancelled(run_id="r", node_id="d", time=1.6, reason="run cancelled"),
        ev.NodeProgress(run_id="r", node_id="c", time=1.6, done=3, total=10),
        ev.NodeLog(run_id="r", node_id="c", time=1.6, message="hello"),
        ev.RunFinished(run_id="r", time=2.0, status="failed", error="node 'a' failed"),
    ]
    record(store, events)
    run = store.get_run("r")
    assert run is not None and run.status == "failed" and run.summary.error == "node 'a' failed"
    a, b, c, d = (run.node(n) for n in nodes)
    assert a and b and c and d
    assert (a.status, a.attempts, a.error_type, a.error_message, a.traceback, a.started_at) == (
        "failed", 2, "ValueError", "bad input", "Traceback ...", 1.2)
    assert (b.status, b.error_message) == ("skipped", "upstream 'a' failed")
    assert (c.status, c.items) == ("pending", 3)
    assert (d.status, d.error_message) == ("cancelled", "run cancelled")
    assert run.summary.node_counts == {"failed": 1, "skipped": 1, "pending": 1, "cancelled": 1}
    assert len(store.run_events("r", kinds=["NodeStarted"])) == 2


def test_cached_node_and_stale_events(store: Store, record: Record) -> None:
    record(store, [
        ev.NodeFinished(run_id="x", node_id="n", time=5.0, metrics={"wall_s": 0.0}, cached=True),
        ev.NodeQueued(run_id="x", node_id="n", time=5.1),  # late: must not un-finish the node
    ])
    run = store.get_run("x")  # the run row exists although RunStarted was never seen
    assert run is not None and run.status == "running"
    node = run.node("n")
    assert node is not None and node.status == "cached" and node.cached


def test_non_json_values_are_made_safe(store: Store, record: Record) -> None:
    record(store, [ev.NodeFinished(run_id="j", node_id="n", metrics={
        "wall_s": float("nan"), "shape": (2, 3), "obj": object.__name__, "text": "a\x00b",
    })])
    node = store.get_run("j").node("n")  # type: ignore[union-attr]
    assert node is not None
    assert node.metrics == {"wall_s": None, "shape": [2, 3], "obj": "object", "text": "ab"}
    assert node.wall_s is None


def test_on_event_never_waits_for_the_database(db_url: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = Store(db_url)
    blocker = sqlite3.connect(tmp_path / "store.db", timeout=30)
    blocker.execute("BEGIN EXCLUSIVE")  # nobody else can read or write now
    try:
        emit(store, run_stream("locked"))  # returns although the database is locked
        assert store.recorder.pending > 0
        assert store.flush(timeout=0.3) is False
    finally:
        blocker.rollback()
        blocker.close()
    assert store.flush(timeout=30) is True
    assert store.get_run("locked").status == "succeeded"  # type: ignore[union-attr]
    store.close()


def test_batches_fill_up_and_flush_writes_the_rest(db_url: str) -> None:
    store = Store(db_url)
    recorder = EventRecorder(store.engine, batch_size=50, interval_s=60.0)
    events = [ev.NodeProgress(run_id="b", node_id=f"n{i}", done=i) for i in range(120)]
    for event in events:
        recorder.on_event(event)
    assert recorder.flush(timeout=30)
    assert recorder.batches == 3  # 50 + 50 + the 20 the flush pushed out (not 120 transactions)
    assert len(store.run_events("b")) == 120
    assert recorder.flush(timeout=0) is True  # nothing pending
    recorder.close()
    store.close()


def test_a_failed_batch_is_retried_and_logged(store: Store, monkeypatch: pytest.MonkeyPatch,
                                              caplog: pytest.LogCaptureFixture) -> None:
    real = BatchWriter.apply
    failures = iter([True, True])

    def flaky(self: BatchWriter, batch: list[ev.Event]) -> None:
        if next(failures, False):
            raise RuntimeError("disk hiccup")
        real(self, batch)

    monkeypatch.setattr(BatchWriter, "apply", flaky)
    with caplog.at_level(logging.WARNING, logger="storage.recorder"):
        emit(store, run_stream("retry"))
        assert store.flush(timeout=30)
    assert "disk hiccup" in caplog.text
    assert store.recorder.failed == 0
    assert len(store.run_events("retry")) == len(run_stream("retry"))


def test_an_event_that_cannot_be_written_is_logged_not_silently_dropped(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    real = BatchWriter.apply_one

    def poison(self: BatchWriter, event: ev.Event) -> None:
        if event.node_id == "poison":
            raise ValueError("cannot store this")
        real(self, event)

    monkeypatch.setattr(BatchWriter, "apply_one", poison)
    store.recorder.retries = 2
    events = run_stream("p", ("a",))
    events.insert(2, ev.NodeLog(run_id="p", node_id="poison", message="x"))
    with caplog.at_level(logging.WARNING, logger="storage.recorder"):
        emit(store, events)
        assert store.flush(timeout=30)
    assert store.recorder.failed == 1
    assert "NodeLog of run p node poison could not be stored" in caplog.text
    assert len(store.run_events("p")) == len(events) - 1
    assert store.get_run("p").status == "succeeded"  # type: ignore[union-attr]


def test_concurrent_writers_lose_nothing(db_url: str) -> None:
    store = Store(db_url)
    other = Store(db_url)  # a second process-like writer on the same file
    streams = {f"run{i}": run_stream(f"run{i}", tuple(f"n{j}" for j in range(8)), t0=1000.0 + i)
               for i in range(12)}

    def emit_runs(target: Store, run_ids: list[str]) -> None:
        for run_id in run_ids:
            emit(target, streams[run_id])

    ids = sorted(streams)
    threads = [threading.Thread(target=emit_runs, args=(store if k % 2 else other, ids[k::4])) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.flush(timeout=60) and other.flush(timeout=60)
    assert store.recorder.failed == other.recorder.failed == 0
    runs = {r.id: r for r in store.list_runs()}
    assert set(runs) == set(ids)
    for run_id, events in streams.items():
        assert runs[run_id].status == "succeeded"
        assert runs[run_id].node_counts == {"done": 8}
        assert len(store.run_events(run_id)) == len(events)
        assert len(store.run_samples(run_id)) == 8
    other.close()
    store.close()


def test_close_writes_everything_pending(db_url: str) -> None:
    store = Store(db_url)
    emit(store, run_stream("late"))
    store.close()
    with Store(db_url) as again:
        assert again.get_run("late").status == "succeeded"  # type: ignore[union-attr]


def test_store_is_usable_from_many_threads_while_recording(store: Store) -> None:
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(20):
                store.list_runs()
                store.get_run("busy")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(10):
        emit(store, run_stream("busy" if i == 0 else f"busy{i}"))
    for t in readers:
        t.join()
    assert store.flush(timeout=30)
    assert errors == []
    assert len(store.list_runs()) == 10


def test_store_subscribes_to_an_event_bus(store: Store) -> None:
    bus = ev.EventBus()
    bus.subscribe(store.observer())
    for event in run_stream("bus"):
        bus.emit(event)
    assert store.flush(timeout=30)
    assert store.get_run("bus").status == "succeeded"  # type: ignore[union-attr]


def test_threads_do_not_leak(db_url: str) -> None:
    before = threading.active_count()
    store = Store(db_url)
    emit(store, run_stream("t"))
    store.close()
    assert threading.active_count() == before
