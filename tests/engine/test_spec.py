"""Agent specs: lifecycle overrides, the run context's cancel and timeout, events round trip."""

from __future__ import annotations

import threading
import time

import pytest
from pydantic import ValidationError

from engine.errors import AgentTimeoutError, RunCancelledError
from engine.events import NodeFailed, RunStarted, event_from_dict
from engine.registry import default_registry
from engine.spec import Lifecycle, RunContext


def test_lifecycle_overrides_merge_section_by_section() -> None:
    base = Lifecycle()
    merged = base.merged({"execution": {"retries": 3}, "start": {"inputs": "any"}})
    assert merged.execution.retries == 3
    assert merged.execution.backoff_factor == base.execution.backoff_factor
    assert merged.start.inputs == "any"
    with pytest.raises(ValidationError):
        base.merged({"execution": {"retries": -1}})


def test_run_context_wait_wakes_on_cancel() -> None:
    cancel = threading.Event()
    ctx = RunContext(cancel_event=cancel)
    threading.Timer(0.05, cancel.set).start()
    started = time.monotonic()
    with pytest.raises(RunCancelledError):
        ctx.wait(10)
    assert time.monotonic() - started < 5


def test_run_context_wait_stops_at_the_deadline() -> None:
    ctx = RunContext(deadline=time.monotonic() + 0.05)
    with pytest.raises(AgentTimeoutError):
        ctx.wait(10)


def test_sim_task_duration_comes_from_its_params() -> None:
    spec = default_registry().get("sim.task")
    assert spec.expected_duration(spec.parse_params({"duration_s": 120})) == 120
    assert spec.simulated


def test_events_round_trip_through_dicts() -> None:
    for event in (
        RunStarted(run_id="r", workflow_name="w", policy="fifo", backend="local", capacity={}, node_ids=("a", "b")),
        NodeFailed(run_id="r", node_id="a", error_type="RuntimeError", message="boom", traceback="tb"),
    ):
        assert event_from_dict(event.to_dict()) == event
