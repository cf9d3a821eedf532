"""The Agents page's measured figures: computed from stored node records (runs, median and p95
wall time, p95 peak memory, devices) and shown next to the declarations (Issue 5)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from engine.registry import default_registry
from engine.runs import RunManager, RunOptions
from engine.workflow import workflow_from_data
from storage import Store
from ui.figures import describe_figures, figures_from_runs

FLOW = {"schema_version": 1, "name": "measure-me", "nodes": [
    {"id": "src", "agent": "test.source", "params": {"value": "x"}},
    {"id": "nap", "agent": "test.sleep", "params": {"seconds": 0.01}}],
    "edges": [{"source": "src", "target": "nap"}]}


def node(agent: str, wall: float | None, *, status: str = "done", cached: bool = False, rss: float | None = 100.0,
         device: str = "cpu", isolated: bool = False) -> Any:
    return SimpleNamespace(agent=agent, status=status, cached=cached, wall_s=wall, peak_rss_mb=rss, device=device,
                           metrics={"isolated": isolated})


def run(run_id: str, *nodes: Any, time_scale: float = 1.0) -> Any:
    return SimpleNamespace(id=run_id, options={"time_scale": time_scale}, nodes=nodes)


def test_figures_count_only_finished_uncached_nodes_and_scale_simulated_ones() -> None:
    details = [run("r1", node("a", 1.0), node("a", 3.0, device="cuda:0"), node("a", 50.0, cached=True)),
               run("r2", node("a", 2.0, rss=300.0), node("a", None, status="failed")),
               run("r3", node("sim", 0.02, isolated=True), time_scale=0.01)]
    figs = figures_from_runs(details, simulated=lambda name: name == "sim")
    a = figs["a"]
    assert (a.runs, a.executions) == (2, 3)
    assert a.wall.median == 2.0 and 2.0 < a.wall.p95 <= 3.0
    assert a.memory is not None and a.memory.p95 > 100.0
    assert a.devices == ("cpu", "cuda:0") and a.isolated == 0
    assert figs["sim"].wall.median == pytest.approx(2.0)  # 0.02 s at time scale 0.01 = 2 agent seconds
    assert figs["sim"].isolated == 1


def test_memory_is_said_to_be_process_wide_unless_isolated() -> None:
    spec = default_registry().get("test.sleep")
    shared = figures_from_runs([run("r", node("test.sleep", 0.1))], lambda _: False)["test.sleep"]
    own = figures_from_runs([run("r", node("test.sleep", 0.1, isolated=True))], lambda _: False)["test.sleep"]
    assert "process-wide" in " ".join(describe_figures(spec, shared))
    assert "process-wide" not in " ".join(describe_figures(spec, own))
    assert "Not measured yet" in describe_figures(spec, None)[0]


def record_run() -> str:
    store = Store()
    manager = RunManager(registry=default_registry(), machine=None)
    manager.bus.subscribe(store.observer())
    try:
        handle = manager.submit(workflow_from_data(FLOW), RunOptions())
        assert handle.wait(30).value == "succeeded"
        assert store.flush(10)
        return str(handle.run_id)
    finally:
        manager.shutdown()
        store.close()


def expander_text(at: AppTest, agent: str) -> str:
    box = next(e for e in at.expander if f"· {agent} v" in e.label)
    return "\n".join(str(m.value) for m in [*box.markdown, *box.caption]).replace("\\", "")


def test_agents_page_shows_measured_figures_after_a_recorded_run(app: AppTest) -> None:
    record_run()
    app.run()
    app.switch_page("pages/agents.py").run()
    assert not app.exception, app.exception
    text = expander_text(app, "test.sleep")
    assert "measured median" in text and "over 1 run(s)" in text, text
    assert "declared" in text and "Peak memory" in text and "Devices seen: `cpu`" in text
    assert "Not measured yet" in expander_text(app, "sim.task")  # not part of the recorded run
