"""AppTest tests of the start form's plan inputs: learned estimates once a workflow has enough
recorded runs (Issue 8), and the Ray cluster's capacity after "Connect to Ray" (Issue 7)."""

from __future__ import annotations

import importlib.util
import time
from typing import Any

import pytest

from engine.registry import default_registry
from engine.resources import Capacity
from engine.runs import RunManager, RunOptions
from engine.workflow import workflow_from_data
from storage import Store
from tests import recording
from tests.monitor.conftest import poll
from ui.editor import DesignerSession

FLOW = {"schema_version": 1, "name": "learn-me", "nodes": [
    {"id": "a", "agent": "sim.task", "params": {"duration_s": 10}},
    {"id": "b", "agent": "sim.task", "params": {"duration_s": 30}}],
    "edges": [{"source": "a", "target": "b"}]}
LABEL = "Open in the designer: learn-me"


def record_runs(count: int) -> None:
    """Run FLOW ``count`` times outside the app, recorded in the test's database."""
    store = Store()
    try:
        recording.record_runs(store, RunManager(registry=default_registry(), machine=None),
                              [workflow_from_data(FLOW) for _ in range(count)], RunOptions(time_scale=0.001))
    finally:
        store.close()


def stored_options(run_id: str, timeout: float = 15.0) -> dict[str, Any]:
    """The options stored with a run, once the app's store has written it."""
    store = Store()
    try:
        deadline = time.monotonic() + timeout
        while (detail := store.get_run(run_id)) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert detail is not None, f"run {run_id} was never stored"
        return dict(detail.options or {})
    finally:
        store.close()


def plan_table(at: Any) -> dict[str, str]:
    for df in at.dataframe:
        frame = df.value
        if "plan uses" in frame.columns:
            return dict(zip(frame["node"], frame["plan uses"], strict=True))
    return {}


def open_form(app: Any) -> Any:
    at = app.run()
    at.session_state["designer_session"] = DesignerSession(workflow_from_data(FLOW))
    at.switch_page("pages/run.py").run()
    at.selectbox(key="launch.source").select(LABEL).run()
    assert not at.exception, at.exception
    return at


def captions(at: Any) -> str:
    return "\n".join(c.value for c in at.caption)


def test_without_enough_runs_the_plan_uses_declarations(app):
    record_runs(2)
    at = open_form(app)
    assert "uses declared durations" in captions(at)
    assert plan_table(at) == {"a": "declared", "b": "declared"}
    assert at.checkbox(key="launch.learned.learn-me").disabled


def test_after_three_runs_the_plan_and_the_run_use_learned_estimates(app):
    record_runs(3)
    at = open_form(app)
    box = at.checkbox(key="launch.learned.learn-me")
    assert box.value and not box.disabled  # on by default once estimates exist
    assert "uses learned estimates for 2 of 2" in captions(at)
    assert plan_table(at) == {"a": "learned (3 runs)", "b": "learned (3 runs)"}

    at.number_input(key="launch.scale").set_value(0.001).run()
    at.button(key="launch.start").click().run()
    assert not at.exception, at.exception
    run_id = at.session_state["run_id"]
    at = poll(at, lambda a: run_id in (a.session_state["run_id"],) and "succeeded" in
              "".join(p.proto.text for p in a.get("progress")))
    durations = stored_options(run_id).get("durations") or {}
    assert set(durations) == {"a", "b"}
    assert durations["b"] > durations["a"] > 0  # measured medians, in agent time (30 vs 10 declared)


def test_learned_estimates_can_be_switched_off(app):
    record_runs(3)
    at = open_form(app)
    at.checkbox(key="launch.learned.learn-me").uncheck().run()
    assert "switched off" in captions(at)
    assert plan_table(at) == {"a": "declared", "b": "declared"}


ray_missing = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")


@ray_missing
def test_connect_to_ray_shows_the_cluster_and_plans_with_it(app, monkeypatch):
    from engine import remote

    cluster = Capacity(cpu=48.0, memory_mb=123456.0)
    calls: list[int] = []

    def fake_capacity(self: Any) -> Capacity:  # no real Ray in AppTests
        calls.append(1)
        return cluster

    monkeypatch.setattr(remote.RayRunner, "capacity", fake_capacity)
    at = open_form(app)
    at.radio(key="launch.backend").set_value("ray").run()
    assert not calls, "Ray must not be contacted before the user asks"
    assert at.button(key="launch.ray_connect").label == "Connect to Ray"
    at.radio(key="launch.capmode").set_value("Custom").run()
    assert at.number_input(key="launch.cpu").value != 48.0  # still this machine's capacity
    at.radio(key="launch.capmode").set_value("This machine").run()

    at.button(key="launch.ray_connect").click().run()
    assert not at.exception, at.exception
    assert calls
    shown = "\n".join(m.value for m in at.markdown)
    assert "48 CPU threads" in shown and "123,456 MB memory" in shown
    at.radio(key="launch.capmode").set_value("Custom").run()
    assert at.number_input(key="launch.cpu").value == 48.0  # the cluster is the plan's machine now


@ray_missing
def test_ray_connection_errors_are_explained(app, monkeypatch):
    from engine import remote
    from engine.backends.ray import RayUnavailableError

    def unreachable(self: Any) -> Capacity:
        raise RayUnavailableError("cannot reach the Ray cluster at ray://nowhere:10001; check the address")

    monkeypatch.setattr(remote.RayRunner, "capacity", unreachable)
    at = open_form(app)
    at.radio(key="launch.backend").set_value("ray").run()
    at.button(key="launch.ray_connect").click().run()
    assert not at.exception, at.exception
    text = "\n".join(e.value for e in at.error) + "\n".join(m.value for m in at.markdown)
    assert "Could not connect to Ray" in text and "nowhere" in text and "check the address" in text, text
    assert at.button(key="launch.ray_connect").label == "Connect to Ray"  # still not connected
