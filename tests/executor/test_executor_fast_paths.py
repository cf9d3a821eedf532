"""The executor's per-node fast paths keep the behaviour of the plain code they replace: the
RunContext built without ``__init__``, the warm pool that keeps emptied lists, and the cancel flag
dropped when a node ends."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from executor_kit import workflow

from engine.attempts import NodeRunner
from engine.backends.local import WarmPool
from engine.events import Event, EventBus, NodeLog, NodeProgress
from engine.metrics import NullGpuProbe
from engine.results import ResultStore
from engine.runs import RunOptions
from engine.runstate import CancelFlag
from engine.spec import Lifecycle, RunContext


def _runner(tmp_path: Any) -> tuple[NodeRunner, list[Event]]:
    bus, seen = EventBus(), []
    bus.subscribe(seen.append)
    return NodeRunner(bus, backend=None, results=ResultStore(tmp_path), gpu=NullGpuProbe(), rss=lambda: None), seen  # type: ignore[arg-type]


def _node(lifecycle: Lifecycle, threads: int = 2) -> SimpleNamespace:
    return SimpleNamespace(id="n1", lifecycle=lifecycle, device="cpu", threads=threads, cancel_event=CancelFlag(),
                           attempts=3, logs=[], progress=(0, None), progress_sent=float("-inf"), mem_peak_mb=0.0)


def test_fast_context_equals_the_constructed_one(tmp_path) -> None:
    runner, seen = _runner(tmp_path)
    run = SimpleNamespace(id="r1", options=SimpleNamespace(time_scale=0.5), version=0)
    lifecycles = [Lifecycle(), Lifecycle().merged({"execution": {"timeout_s": 5}, "exit": {"time_limit_s": 2}})]
    for lifecycle in lifecycles:
        ns = _node(lifecycle)
        before = time.monotonic()
        fast = runner.context(run, ns)  # type: ignore[arg-type]
        after = time.monotonic()
        slow = RunContext(node_id="n1", run_id="r1", device="cpu", threads=2, lifecycle=lifecycle,
                          cancel_event=ns.cancel_event, time_scale=0.5, attempt=3,
                          deadline=fast.deadline, stop_at=fast.stop_at, on_progress=print, on_log=print)
        assert type(fast) is RunContext
        assert set(vars(fast)) == set(vars(slow)), "RunContext.__init__ changed: update NodeRunner.context"
        callbacks = {"_on_progress", "_on_log"}
        assert {k: v for k, v in vars(fast).items() if k not in callbacks} == \
               {k: v for k, v in vars(slow).items() if k not in callbacks}
        for limit, value in ((lifecycle.execution.timeout_s, fast.deadline), (lifecycle.exit.time_limit_s, fast.stop_at)):
            assert (value is None) if not limit else before + limit <= value <= after + limit
        fast.progress(4, 10)
        fast.log("hello")
        assert fast.items_processed == 4 and fast.logs == ["hello"]
    assert [(type(e), e.node_id) for e in seen][-2:] == [(NodeProgress, "n1"), (NodeLog, "n1")]
    assert ns.progress == (4, 10) and list(ns.logs) == ["hello"]


def test_fast_context_threads_are_at_least_one(tmp_path) -> None:
    runner, _ = _runner(tmp_path)
    run = SimpleNamespace(id="r1", options=SimpleNamespace(time_scale=1.0), version=0)
    assert runner.context(run, _node(Lifecycle(), threads=0)).threads == 1  # type: ignore[arg-type]


def test_warm_pool_lent_out_keys_are_not_idle_and_eviction_skips_them() -> None:
    from engine.agents.testing import Source

    spec, params = Source.spec, Source.spec.parse_params({})
    pool = WarmPool(budget_mb=250)
    a, b = ("test.source", "1.0", "a", "cpu"), ("test.source", "1.0", "b", "cpu")
    agent_a = pool.checkout(a, spec, params, 100)
    pool.checkin(a, agent_a, 100)
    assert pool.checkout(a, spec, params, 100) is agent_a  # lent out again: no idle agent of key a
    assert pool.keys() == []
    agent_b = pool.checkout(b, spec, params, 100)
    pool.checkin(b, agent_b, 100)
    assert pool.keys() == [b]
    pool.checkin(a, agent_a, 100)  # a is now the most recently used
    assert pool.keys() == [b, a]
    pool.checkout(("test.source", "1.0", "c", "cpu"), spec, params, 100)  # 300 MB loaded > 250: evict b
    assert pool.keys() == [a] and pool.evictions == 1 and pool.loaded_mb == 200


def test_ended_nodes_drop_their_cancel_flag(manager) -> None:
    m, _ = manager
    wf = workflow([{"id": f"e{i}", "agent": "test.echo"} for i in range(6)], [(f"e{i}", f"e{i + 1}") for i in range(5)])
    handle = m.submit(wf, RunOptions(policy="fifo", use_cache=False, predict=False))
    assert handle.wait(30) == "succeeded"
    run = m._runs[handle.run_id]
    assert all(ns.cancel_event is None for ns in run.nodes.values())


def test_progress_events_are_throttled_but_the_snapshot_is_not(tmp_path, monkeypatch) -> None:
    """Batches report progress many times a second; events go out for the first report, the
    last, and otherwise at most every PROGRESS_EVERY_S per node."""
    from engine import attempts

    runner, seen = _runner(tmp_path)
    run = SimpleNamespace(id="r1", options=SimpleNamespace(time_scale=1.0), version=0)
    ns = _node(Lifecycle())
    clock = [100.0]
    monkeypatch.setattr(attempts.time, "monotonic", lambda: clock[0])
    for done in range(1, 11):  # ten reports 10 ms apart
        runner.progress(run, ns, done, 10)  # type: ignore[arg-type]
        assert ns.progress == (done, 10)
        clock[0] += 0.01
    sent = [e.done for e in seen if isinstance(e, NodeProgress)]
    assert sent[0] == 1 and sent[-1] == 10  # the first and the last
    assert sent == [1, 6, 10]  # 50 ms apart in between
    assert run.version == 10
