"""AppTest smoke tests of the Lab page: compare policies on a template, change a capacity, step,
explain a wait, and the learned-estimates tab on an empty history."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[2]


def _page() -> None:
    from ui.lab.page import render_lab_page

    render_lab_page()


@pytest.fixture
def lab(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[AppTest]:
    monkeypatch.setenv("SERVICEGRID_NO_CUDA", "1")
    st.cache_resource.clear()
    at = AppTest.from_function(_page, default_timeout=60)
    yield at
    st.cache_resource.clear()


def _metrics(at: AppTest) -> list[dict]:
    return at.dataframe[0].value.to_dict("records")


def test_compare_three_policies_and_change_capacity(lab: AppTest) -> None:
    at = lab.run()
    assert not at.exception, at.exception
    assert at.selectbox(key="lab.template").value == "lab-contention"
    rows = _metrics(at)
    assert [r["policy"] for r in rows[:3]] == ["fifo", "smallest_demand", "critical_path"]
    assert rows[3]["policy"].startswith("optimum")
    optimum = rows[3]["makespan_s"]
    assert all(r["makespan_s"] >= optimum for r in rows[:3])
    before = {r["policy"]: r["makespan_s"] for r in rows}
    cpu = next(n for n in at.number_input if n.label == "CPU threads")
    cpu.set_value(8.0)
    mem = next(n for n in at.number_input if n.label == "Memory (MB)")
    mem.set_value(16384.0).run()
    assert not at.exception, at.exception
    after = {r["policy"]: r["makespan_s"] for r in _metrics(at)}
    assert after["fifo"] < before["fifo"]  # more capacity, less waiting
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")


def test_step_mode_and_wait_explanation(lab: AppTest) -> None:
    at = lab.run()
    at.segmented_control(key="lab.view").set_value("Step mode").run()
    first = next(m.value for m in at.markdown if "Decision 1 of" in m.value)
    at.button(key="lab.step.next").click().run()
    assert not at.exception, at.exception
    assert any("Decision 2 of" in m.value for m in at.markdown), first
    at.button(key="lab.step.reset").click().run()
    assert any("Decision 1 of" in m.value for m in at.markdown)
    at.segmented_control(key="lab.view").set_value("Why did it wait?").run()
    picker = at.selectbox(key="lab.why.node")  # it opens on the node that waited longest, each option says its wait
    longest = max(picker.options, key=lambda o: float(re.search(r" ([\d.]+) s", o).group(1)) if " s" in o else 0.0)
    assert picker.value is not None and picker.format_func(picker.value) == longest and "no wait" not in longest
    assert any(o.endswith("· no wait") for o in picker.options)  # the sources start at once
    at.selectbox(key="lab.why.plan").set_value("fifo")
    at.selectbox(key="lab.why.node").set_value("summarize").run()
    info = [i.value for i in at.info if "summarize" in i.value]
    assert info and ("waited" in info[0] or "started" in info[0])


def test_learned_tab_without_runs_says_how_to_get_them(lab: AppTest) -> None:
    at = lab.run()
    at.segmented_control(key="lab.view").set_value("Learned estimates").run()
    assert any("No finished runs of this workflow yet" in i.value for i in at.info)


def test_learned_estimates_and_apply_advice(lab: AppTest, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.results import ResultStore
    from engine.runs import RunManager, RunOptions
    from storage import Store
    from tests.lab.lab_agents import lab_registry
    from tests.lab.test_lab_estimates import MACHINE, _workflow
    from tests.recording import record_runs

    monkeypatch.setenv("SERVICEGRID_AGENT_MODULES", "tests.lab.lab_agents")
    store = Store()
    workflow_id, _ = store.save_workflow(_workflow())
    manager = RunManager(registry=lab_registry(), machine=MACHINE, results=ResultStore(data_dir / "r"), sample_hz=20)
    try:
        record_runs(store, manager, [_workflow() for _ in range(3)], RunOptions(use_cache=False))
    finally:
        store.close()
    at = lab.run()
    at.segmented_control(key="lab.source").set_value("Saved workflow")
    at.segmented_control(key="lab.view").set_value("Learned estimates").run()
    assert not at.exception, at.exception
    assert any("Learned from 3 finished run(s)" in c.value for c in at.caption)
    advice = [m.value for m in at.markdown if "declared 2,048 MB, p95 measured" in m.value]
    assert advice
    at.toggle(key="lab.learned.use").set_value(True)
    at.segmented_control(key="lab.view").set_value("Compare").run()
    rows = {r["policy"]: r["makespan_s"] for r in _metrics(at)}
    assert rows["critical_path"] < 2.0  # learned ~0.5 s instead of the declared 4.5 s
    at.segmented_control(key="lab.view").set_value("Learned estimates").run()
    at.button(key="lab.advice.apply").click().run()
    assert not at.exception, at.exception
    assert any("Saved version 2" in s.value for s in at.success)
    with Store() as check:
        saved = check.get_workflow(workflow_id)
    assert saved.node("b").resources["memory_mb"] < 2048


def test_what_if_duration_and_demand_update_every_plan(lab: AppTest) -> None:
    at = lab.run()
    before = {r["policy"]: r["makespan_s"] for r in _metrics(at)}
    at.number_input(key="lab.wi.dur.template:lab-contention.load").set_value(12.0).run()
    assert not at.exception, at.exception
    after = {r["policy"]: r["makespan_s"] for r in _metrics(at)}
    assert all(after[p] == before[p] + 10 for p in ("fifo", "smallest_demand", "critical_path"))  # load is first
    assert any("Changed: load: duration=12" in c.value for c in at.caption)
    at.number_input(key="lab.wi.mem.template:lab-contention.load").set_value(6144.0).run()
    assert not at.exception, at.exception
    assert any("memory_mb=6144" in c.value for c in at.caption)


def test_a_template_with_components_is_planned_node_by_node(lab: AppTest) -> None:
    at = lab.run()
    at.selectbox(key="lab.template").select("support-desks").run()
    assert not at.exception, at.exception
    assert _metrics(at)[0]["makespan_s"] > 0
    at.segmented_control(key="lab.view").set_value("Why did it wait?").run()
    assert not at.exception, at.exception
    options = [str(o) for s in at.selectbox for o in s.options]
    assert any(o.startswith("payments/route") for o in options)  # the nodes inside, each explained
