"""The Agents page's measured figures: computed from stored node records (runs, median and p95
wall time, p95 peak memory, devices, measured ÷ declared for each execution's own parameters and
planned items) and shown next to the declarations: in each agent's details, the catalogue table
and the declared-against-measured chart (Issues 4 and 5)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from engine.registry import default_registry
from engine.runs import RunManager, RunOptions
from engine.workflow import workflow_from_data
from storage import Store
from tests.recording import record_runs
from ui.agents_page import catalogue_rows, declared_vs_measured_spec
from ui.figures import FASTER_BY, SLOWER_BY, describe_figures, figures_from_runs

FLOW = {"schema_version": 1, "name": "measure-me", "nodes": [
    {"id": "src", "agent": "test.source", "params": {"value": "x"}},
    {"id": "nap", "agent": "test.sleep", "params": {"seconds": 0.01}}],
    "edges": [{"source": "src", "target": "nap"}]}


def node(agent: str, wall: float | None, *, status: str = "done", cached: bool = False, rss: float | None = 400.0,
         device: str = "cpu", isolated: bool = False, node_id: str = "", memory: float | None = None) -> Any:
    metrics: dict[str, Any] = {"isolated": isolated}
    if memory is not None:
        metrics["memory_mb"] = memory
    return SimpleNamespace(agent=agent, status=status, cached=cached, wall_s=wall, peak_rss_mb=rss, device=device,
                           metrics=metrics, node_id=node_id)


def run(run_id: str, *nodes: Any, time_scale: float = 1.0, workflow: dict[str, Any] | None = None) -> Any:
    return SimpleNamespace(id=run_id, options={"time_scale": time_scale}, nodes=nodes, workflow=workflow)


def image_flow(n_items: int, model: str = "lesion_cnn") -> dict[str, Any]:
    return {"schema_version": 1, "name": f"images-{n_items}", "edges": [{"source": "src", "target": "cls"}],
            "nodes": [{"id": "src", "agent": "vision.source", "params": {"n_items": n_items}},
                      {"id": "cls", "agent": "vision.classify", "params": {"model": model}}]}


def test_each_execution_is_held_against_what_was_declared_for_its_items_and_params() -> None:
    registry = default_registry()
    spec = registry.get("vision.classify")
    params = spec.params.model_validate({})
    at_64, at_4096 = spec.expected_duration(params, 64), spec.expected_duration(params, 4096)
    assert at_4096 > 10 * at_64  # size-aware: the comparison below would be wrong with the 64-item figure
    details = [run("small", node("vision.classify", 2 * at_64, node_id="cls"), workflow=image_flow(64)),
               run("big", node("vision.classify", 2 * at_4096, node_id="cls"), workflow=image_flow(4096)),
               run("bad", node("vision.classify", 99.0, node_id="cls"), workflow=image_flow(64, model="retired_cnn"))]
    fig = figures_from_runs(details, lambda _: False, registry)["vision.classify"]
    assert fig.executions == 3  # the run whose parameters no longer validate still counts as measured...
    assert fig.ratio is not None and fig.ratio.count == 2  # ...but is not compared with a declaration
    assert fig.ratio.low == pytest.approx(2.0) and fig.ratio.high == pytest.approx(2.0)
    assert fig.declared is not None and fig.declared.low == pytest.approx(at_64)
    assert fig.declared.high == pytest.approx(at_4096)
    assert fig.verdict == "slower"
    # without a registry (or a stored workflow) nothing is compared
    assert figures_from_runs(details, lambda _: False)["vision.classify"].ratio is None


@pytest.mark.parametrize(("ratio", "verdict"), [(SLOWER_BY * 1.1, "slower"), (SLOWER_BY * 0.9, "within"),
                                                (1 / FASTER_BY * 1.1, "within"), (1 / FASTER_BY * 0.9, "faster")])
def test_a_declaration_holds_inside_the_band_and_the_details_say_what_to_correct(ratio: float, verdict: str) -> None:
    registry = default_registry()
    spec = registry.get("test.sleep")
    flow = {**FLOW, "nodes": [FLOW["nodes"][0], {"id": "nap", "agent": "test.sleep", "params": {"seconds": 0.5}}]}
    fig = figures_from_runs([run("r", node("test.sleep", 0.5 * ratio, node_id="nap"), workflow=flow)],
                            lambda _: False, registry)["test.sleep"]
    assert fig.ratio is not None and fig.ratio.median == pytest.approx(ratio)
    assert fig.verdict == verdict
    text = " ".join(describe_figures(spec, fig))
    assert ("needs correcting" in text) == (verdict != "within"), text
    if verdict != "within":
        assert f"runs {verdict} than declared" in text and "duration_fn" in text  # test.sleep computes its time
    rows = catalogue_rows([spec], {"test.sleep": fig})
    assert rows[0]["ratio"] == pytest.approx(ratio) and rows[0]["measured_s"] == pytest.approx(0.5 * ratio)
    chart = declared_vs_measured_spec([spec], {"test.sleep": fig})
    assert chart is not None
    points = next(d["values"] for d in chart_datasets(chart) if d["values"] and "verdict" in d["values"][0])
    assert [p["off"] for p in points] == [verdict != "within"]


def chart_datasets(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """Every inline data set of a layered Vega-Lite spec."""
    found = [{"values": v} for v in (spec.get("datasets") or {}).values()]
    for layer in spec.get("layer") or []:
        if isinstance(layer.get("data"), dict) and "values" in layer["data"]:
            found.append({"values": layer["data"]["values"]})
    return found


def test_no_chart_until_an_agent_is_measured_against_a_declaration() -> None:
    registry = default_registry()
    specs = [registry.get("test.sleep")]
    assert declared_vs_measured_spec(specs, {}) is None
    unmatched = figures_from_runs([run("r", node("test.sleep", 0.1))], lambda _: False, registry)
    assert declared_vs_measured_spec(specs, unmatched) is None  # measured, but no stored workflow to compare with


def test_figures_count_only_finished_uncached_nodes_and_scale_simulated_ones() -> None:
    details = [run("r1", node("a", 1.0, memory=20.0), node("a", 3.0, device="cuda:0"), node("a", 50.0, cached=True)),
               run("r2", node("a", 2.0, memory=120.0), node("a", None, status="failed")),
               run("r3", node("sim", 0.02, isolated=True), time_scale=0.01)]
    figs = figures_from_runs(details, simulated=lambda name: name == "sim")
    a = figs["a"]
    assert (a.runs, a.executions) == (2, 3)
    assert a.wall.median == 2.0 and 2.0 < a.wall.p95 <= 3.0
    # the node's own memory where it was measured; not the 400 MB process RSS of the older record
    assert a.memory is not None and a.memory.count == 2 and 100.0 < a.memory.p95 <= 120.0
    assert a.devices == ("cpu", "cuda:0") and a.isolated == 0
    assert figs["sim"].wall.median == pytest.approx(2.0)  # 0.02 s at time scale 0.01 = 2 agent seconds
    assert figs["sim"].isolated == 1


def test_memory_is_the_nodes_own_and_says_how_it_was_measured() -> None:
    spec = default_registry().get("test.sleep")
    in_thread = figures_from_runs([run("r", node("test.sleep", 0.1, memory=3.0))], lambda _: False)["test.sleep"]
    isolated = figures_from_runs([run("r", node("test.sleep", 0.1, isolated=True))], lambda _: False)["test.sleep"]
    older = figures_from_runs([run("r", node("test.sleep", 0.1))], lambda _: False)["test.sleep"]
    text = " ".join(describe_figures(spec, in_thread))
    assert "measured p95 3 MB" in text and "how far the process's memory rose while it ran" in text
    assert "measured p95 400 MB" in " ".join(describe_figures(spec, isolated))
    assert "how far its own process grew" in " ".join(describe_figures(spec, isolated))
    assert older.memory is None  # only the process's RSS was recorded: no memory figure, not 400 MB
    assert not any(line.startswith("Memory") for line in describe_figures(spec, older))
    assert "Not measured yet" in describe_figures(spec, None)[0]


def record_run() -> str:
    store = Store()
    try:
        return record_runs(store, RunManager(registry=default_registry(), machine=None), [workflow_from_data(FLOW)],
                           RunOptions())[0]
    finally:
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
    assert "declared" in text and "Memory: declared" in text and "Devices seen: `cpu`" in text
    assert "Not measured yet" in expander_text(app, "sim.task")  # not part of the recorded run
    assert "Measured ÷ declared" in text, text  # the stored run's workflow says what test.sleep declared
    table = app.dataframe[0].value
    from ui.services import get_registry

    assert len(table) == len(get_registry())
    sleep = table[table["name"] == "test.sleep"].iloc[0]
    # it slept the 0.01 s its parameters declare, so it cannot have beaten its declaration
    assert sleep["executions"] == 1 and sleep["measured_s"] >= 0.01 and sleep["ratio"] >= 0.99, sleep
    assert table[table["name"] == "sim.task"].iloc[0]["executions"] == 0
    assert any("Each agent is compared" in str(c.value) for c in app.caption)  # the chart's caption


def test_the_catalogue_gives_the_gpu_memory_a_typical_batch_takes() -> None:
    """A GPU agent's row: its declared GPU memory for a batch of its default size on a GPU
    (bench/gpu/memory.py measured it on an H200); none for a CPU agent."""
    from engine.agents.runtime import GPU_WORKSPACE_MB
    from engine.registry import default_registry

    registry = default_registry()
    rows = {r["name"]: r for r in catalogue_rows([registry.get("vision.classify"), registry.get("vision.source")], {})}
    assert rows["vision.classify"]["gpu_mb"] == pytest.approx(GPU_WORKSPACE_MB + 2 + 32 * 0.25)
    assert rows["vision.source"]["gpu_mb"] is None
