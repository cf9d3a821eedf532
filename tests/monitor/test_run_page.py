"""AppTest tests of the Run and History pages: start with a plan preview, watch to the end,
cancel (finished nodes kept), resume (finished nodes cached), history, compare and exports."""

from __future__ import annotations

import io
from typing import Any

import pyarrow as pa
import pytest

from engine.workflow import workflow_from_data
from tests.monitor.conftest import poll
from ui.editor import DesignerSession


def progress_text(at: Any) -> str:
    bars = at.get("progress")
    return bars[0].proto.text if bars else ""


def chart_rows(at: Any, dataset: str) -> list[dict[str, Any]]:
    """Rows of the named dataset of the first Vega-Lite chart carrying it."""
    for el in at.get("vega_lite_chart"):
        for ds in el.proto.datasets:
            if ds.name == dataset:
                return pa.ipc.open_stream(io.BytesIO(ds.data.data)).read_all().to_pylist()
    return []


def node_statuses(at: Any) -> dict[str, str]:
    for df in at.dataframe:
        frame = df.value
        if {"node", "agent", "status"} <= set(frame.columns):
            return dict(zip(frame["node"], frame["status"], strict=True))
    return {}


def start(at: Any, label: str, scale: float = 0.002) -> Any:
    at.switch_page("pages/run.py").run()
    assert not at.exception, at.exception
    at.selectbox(key="launch.source").select(label).run()
    at.number_input(key="launch.scale").set_value(scale).run()
    assert any(m.label == "Predicted makespan" for m in at.metric)  # the plan is shown before confirming
    assert chart_rows(at, "gantt"), "the predicted Gantt has bars"
    at.button(key="launch.start").click().run()
    assert not at.exception, at.exception
    return at


def open_in_designer(at: Any, data: dict[str, Any]) -> None:
    at.session_state["designer_session"] = DesignerSession(workflow_from_data(data))


def chain(name: str, last: dict[str, Any]) -> dict[str, Any]:
    return {"schema_version": 1, "name": name, "nodes": [
        {"id": "src", "agent": "test.source", "params": {"value": name}},
        {"id": "mid", "agent": "test.sleep", "params": {"seconds": 0.05}},
        {"id": "last", **last}],
        "edges": [{"source": "src", "target": "mid"}, {"source": "mid", "target": "last"}]}


def test_start_watch_finish_then_history_and_exports(app):
    at = start(app.run(), "Template: two-stage")
    run_id = at.session_state["run_id"]
    assert at.query_params["run"] in (run_id, [run_id])  # the URL names the run (survives a reload)
    at = poll(at, lambda a: "succeeded" in progress_text(a))
    assert "succeeded" in progress_text(at), progress_text(at)
    gantt = chart_rows(at, "gantt")
    assert {r["kind"] for r in gantt} == {"predicted", "actual"}
    assert {r["status"] for r in gantt if r["kind"] == "actual"} == {"done"}
    assert not chart_rows(at, "utilisation"), "resource charts are lazy tabs: only the open one is drawn"
    at.session_state["live.resources"] = "Reserved share"  # the user picks the tab
    assert chart_rows(at.run(), "utilisation"), "utilisation has points"
    at.session_state["live.resources"] = "Planned vs measured"
    fit = {(r["node"], r["measure"]): r for r in chart_rows(at.run(), "fit")}
    assert set(fit) == {(n, m) for n in ("pre", "cls") for m in ("time (s)", "memory (MB)")}
    assert fit[("cls", "time (s)")]["planned"] == pytest.approx(2 * fit[("pre", "time (s)")]["planned"])  # 240 / 120
    assert fit[("pre", "memory (MB)")]["planned"] == 1024 and fit[("pre", "memory (MB)")]["verdict"] == \
        "under half the plan"  # a simulated service sleeps: it holds its 1 GB on paper only

    at.switch_page("pages/history.py").run()
    assert not at.exception, at.exception
    assert at.selectbox(key="history.open").value.startswith(run_id)
    at.session_state["history.tab"] = "Export"  # History's tabs are lazy: open the Export tab
    labels = {b.label for b in at.run().get("download_button")}
    assert {"JSON", "Nodes CSV", "Samples CSV", "HTML report"} <= labels


def test_cancel_keeps_finished_nodes(app):
    at = app.run()
    open_in_designer(at, chain("cancel-me", {"agent": "test.hang"}))
    at = start(at, "Open in the designer: cancel-me")
    at = poll(at, lambda a: node_statuses(a).get("last") == "running")
    assert node_statuses(at)["last"] == "running"
    at.button(key="monitor.cancel").click().run()
    at = poll(at, lambda a: "cancelled" in progress_text(a))
    assert "cancelled" in progress_text(at)
    statuses = node_statuses(at)
    assert statuses["src"] == statuses["mid"] == "done" and statuses["last"] == "cancelled"

    at.switch_page("pages/history.py").run()
    at = poll(at, lambda a: "cancelled" in a.selectbox(key="history.open").value)
    assert "cancelled" in at.selectbox(key="history.open").value
    assert node_statuses(at)["src"] == "done"  # the history view is built from the store


def test_resume_takes_finished_nodes_from_the_cache(app):
    at = app.run()
    open_in_designer(at, chain("resume-me", {"agent": "test.fail", "params": {"fail_times": -1}}))
    at = start(at, "Open in the designer: resume-me")
    first = at.session_state["run_id"]
    at = poll(at, lambda a: "failed" in progress_text(a))
    assert "failed" in progress_text(at)
    at.switch_page("pages/history.py").run()
    at = poll(at, lambda a: "failed" in a.selectbox(key="history.open").value)
    at.button(key="history.resume").click().run()
    assert not at.exception, at.exception
    second = at.session_state["run_id"]
    assert second != first
    at = poll(at, lambda a: "failed" in progress_text(a))
    statuses = node_statuses(at)
    assert statuses["src"] == statuses["mid"] == "cached", statuses
    assert statuses["last"] == "failed"


def test_history_replays_and_compares_two_runs(app):
    at = start(app.run(), "Template: two-stage")
    first = at.session_state["run_id"]
    at = poll(at, lambda a: "succeeded" in progress_text(a))
    at.button(key="monitor.new").click().run()
    at.selectbox(key="launch.source").select("Template: two-stage").run()
    at.number_input(key="launch.scale").set_value(0.001).run()  # the one thing changed
    at.button(key="launch.start").click().run()
    second = at.session_state["run_id"]
    assert second != first
    at = poll(at, lambda a: "succeeded" in progress_text(a))

    at.switch_page("pages/history.py").run()
    at = poll(at, lambda a: a.selectbox(key="history.open").value.startswith(second))
    at.session_state["history.tab"] = "Compare"  # History's tabs are lazy: open the Compare tab
    at.run().selectbox(key="history.other").select(next(o for o in at.selectbox(key="history.other").options
                                                   if o.startswith(first))).run()
    durations = chart_rows(at, "durations")
    assert {r["run"] for r in durations} == {f"A: {second}", f"B: {first}"}
    changed = next(e for e in at.expander if e.label.startswith("What changed"))
    assert changed.label == f"What changed from {first} to {second} (1)"  # older first
    assert any("run option time scale: 0.002 -> 0.001" in m.value.replace("\\", "") for m in at.markdown)
    assert {r["node"] for r in durations} == {"pre", "cls"}

    at.session_state["history.tab"] = "View"
    assert node_statuses(at.run()) == {"pre": "done", "cls": "done"}  # the slider starts at the end
    slider = at.slider(key=f"history.t.{second}")
    slider.set_value(round(slider.proto.max * 0.1, 2)).run()
    assert not at.exception, at.exception
    replayed = node_statuses(at)
    assert replayed["cls"] != "done" and replayed["pre"] != "done", replayed  # pre ends at a third

    # a closed lazy tab does not draw its widgets; their values come back when it reopens
    moved = at.slider(key=f"history.t.{second}").value
    at.session_state["history.tab"] = "Compare"
    assert chart_rows(at.run(), "durations") and not at.slider, "only the Compare tab is drawn"
    assert at.selectbox(key="history.other").value.startswith(first)
    at.session_state["history.tab"] = "View"
    assert at.run().slider(key=f"history.t.{second}").value == moved
    assert node_statuses(at) == replayed


def test_custom_capacity_reaches_the_plan_and_the_run(app):
    at = app.run()
    at.switch_page("pages/run.py").run()
    at.selectbox(key="launch.source").select("Template: two-stage").run()
    at.radio(key="launch.capmode").set_value("Custom").run()
    at.number_input(key="launch.cpu").set_value(1.0).run()
    at.number_input(key="launch.gpus").set_value(1).run()
    at.number_input(key="launch.scale").set_value(0.002).run()
    assert not at.exception, at.exception
    at.radio(key="launch.backend").set_value("ray").run()
    from engine.runs import RunManager

    # Ray runs start from the browser exactly when the ray package is installed
    assert at.button(key="launch.start").disabled is (not RunManager.supports_backend("ray"))
    at.radio(key="launch.backend").set_value("local").run()
    at.button(key="launch.start").click().run()
    at = poll(at, lambda a: "succeeded" in progress_text(a))
    cpu_rules = chart_rows(at, "cpu_rules")
    assert [r["value"] for r in cpu_rules] == [100.0]  # 1 thread = 100 %
    at.session_state["live.resources"] = "Memory"
    memory_rules = chart_rows(at.run(), "memory_rules")
    assert any("cuda:0" in r["label"] and "simulated" in r["label"] for r in memory_rules), memory_rules


def test_reuse_cached_results_off_runs_every_node_again(app):
    """The Run page's "Reuse cached results": on (the default) a second run of the same workflow takes
    every node from the cache; off, every node runs and is measured again (what the Lab learns from).
    Real agents: simulated ones are never cached."""
    at = start(app.run(), "Template: finance-risk")
    for reuse, expected in ((True, {"cached"}), (False, {"done"})):
        at = poll(at, lambda a: "succeeded" in progress_text(a))
        at.button(key="monitor.new").click().run()  # back to the start form
        at.selectbox(key="launch.source").select("Template: finance-risk").run()
        at.number_input(key="launch.scale").set_value(0.002).run()
        assert at.checkbox(key="launch.cache").value is True  # on unless unticked
        if not reuse:
            at.checkbox(key="launch.cache").uncheck().run()
        at.button(key="launch.start").click().run()
        assert not at.exception, at.exception
        at = poll(at, lambda a: "succeeded" in progress_text(a))
        assert set(node_statuses(at).values()) == expected, node_statuses(at)


def test_a_run_only_up_to_a_node_runs_it_and_what_it_needs(app):
    at = app.run()
    at.switch_page("pages/run.py").run()
    at.selectbox(key="launch.source").select("Template: two-stage").run()
    at.number_input(key="launch.scale").set_value(0.002).run()
    at.multiselect(key="launch.to.Template: two-stage").select("pre").run()
    assert any("1 of 2 nodes run: pre" in c.value for c in at.caption)
    assert {r["node"] for r in chart_rows(at, "gantt")} == {"pre"}  # the plan is of that part
    at.button(key="launch.start").click().run()
    assert not at.exception, at.exception
    at = poll(at, lambda a: "succeeded" in progress_text(a))
    assert node_statuses(at) == {"pre": "done"}


def test_a_run_started_paused_is_stepped_and_resumed_from_the_run_page(app):
    at = app.run()
    at.switch_page("pages/run.py").run()
    at.selectbox(key="launch.source").select("Template: two-stage").run()
    at.number_input(key="launch.scale").set_value(0.002).run()
    at.checkbox(key="launch.paused").check().run()
    at.button(key="launch.start").click().run()
    assert not at.exception, at.exception
    at = poll(at, lambda a: bool(node_statuses(a)))
    assert any("Paused" in i.value and "1 node ready" in i.value and "Step starts `pre` next" in i.value
               for i in at.info), [i.value for i in at.info]
    assert node_statuses(at) == {"pre": "queued", "cls": "waiting_inputs"}
    assert ": paused ·" in progress_text(at) and "ETA" not in progress_text(at), progress_text(at)
    at.button(key="monitor.step").click().run()
    at = poll(at, lambda a: node_statuses(a).get("pre") == "done")
    assert node_statuses(at)["cls"] == "queued"  # released by pre, not started: still paused
    at.button(key="monitor.resume").click().run()
    at = poll(at, lambda a: "succeeded" in progress_text(a))
    assert node_statuses(at) == {"pre": "done", "cls": "done"}
    assert not [b for b in at.button if b.key in ("monitor.pause", "monitor.resume", "monitor.step")]  # it ended


def test_a_breakpoint_chosen_in_the_run_form_pauses_the_run_before_its_node(app):
    at = app.run()
    at.switch_page("pages/run.py").run()
    at.selectbox(key="launch.source").select("Template: two-stage").run()
    at.number_input(key="launch.scale").set_value(0.002).run()
    breaks = next(m for m in at.multiselect if m.label == "Pause before (breakpoints)")
    breaks.select("cls").run()
    at.button(key="launch.start").click().run()
    assert not at.exception, at.exception
    at = poll(at, lambda a: any("at the breakpoint before `cls`" in i.value for i in a.info))
    assert node_statuses(at) == {"pre": "done", "cls": "queued"}
    assert [e.label for e in at.expander if e.label.startswith("What waits at")] == ["What waits at cls"]
    waits = " ".join(str(m.value) for m in at.markdown)
    assert "**What waits at cls** in run" in waits and "(at its breakpoint)" in waits  # the inputs it starts with
    assert "No outputs" not in " ".join(str(c.value) for c in at.caption)  # pre's output is there to show
    at.button(key="monitor.resume").click().run()
    at = poll(at, lambda a: "succeeded" in progress_text(a))
    assert node_statuses(at) == {"pre": "done", "cls": "done"}


def test_a_condition_given_in_the_run_form_pauses_only_when_it_holds(app):
    from ui.services import get_run_manager

    at = app.run()
    at.switch_page("pages/run.py").run()
    at.selectbox(key="launch.source").select("Template: customer-service").run()
    at.multiselect(key="launch.breaks.Template: customer-service").select("route").run()
    at.text_input(key="launch.break_if.Template: customer-service.route").input("intents: predicted == refund").run()
    at.button(key="launch.start").click().run()
    assert not at.exception, at.exception
    at = poll(at, lambda a: any("at the breakpoint before `route`" in i.value for i in a.info))
    said = next(i.value for i in at.info if "at the breakpoint before" in i.value).replace("\\", "")
    assert "(intents: predicted == 'refund' holds for" in said and "of 60 rows)" in said
    assert list(map(list, get_run_manager().snapshot(at.session_state["run_id"]).options["break_if"])) == [
        ["route", "intents: predicted == refund"]]
    at.button(key="monitor.resume").click().run()
    at = poll(at, lambda a: "succeeded" in progress_text(a))


def test_the_parameters_of_the_node_a_run_paused_at_are_changed_on_the_run_page(app):
    """Edit and continue from the Run page: a field of the held node's form goes into the run at
    once; a value the agent refuses leaves the run as it was and says why."""
    from ui.services import get_run_manager

    at = app.run()
    at.switch_page("pages/run.py").run()
    at.selectbox(key="launch.source").select("Template: customer-service").run()
    at.multiselect(key="launch.breaks.Template: customer-service").select("route").run()
    at.button(key="launch.start").click().run()
    at = poll(at, lambda a: any("at the breakpoint before `route`" in i.value for i in a.info))
    run_id, manager = at.session_state["run_id"], get_run_manager()
    assert any(m.value == "**Change route's parameters for this run**" for m in at.markdown)
    at.number_input(key=f"monitor.amend.{run_id}.route.escalate_amount").set_value(50.0).run()
    assert any(f"run {run_id} takes route: escalate_amount 500 -> 50.0" in s.value.replace("\\", "")
               for s in at.success), [s.value for s in at.success]
    assert manager.workflow(run_id).node("route").params["escalate_amount"] == 50
    at.text_input(key=f"monitor.amend.{run_id}.route.triage_queue.text").input("").run()
    refused = " ".join(e.value for e in at.error).replace("\\", "")
    assert "not changed: the new settings of 'route' do not validate" in refused and "at least 1 character" in refused
    assert manager.workflow(run_id).node("route").params.get("triage_queue", "triage") == "triage"
    at.button(key="monitor.resume").click().run()
    at = poll(at, lambda a: "succeeded" in progress_text(a))
    (tickets,) = manager.outputs(run_id, "route").values()
    assert any("≥ 50" in r for r in tickets["columns"]["reason"])  # ran with the value set at the pause


def test_a_run_paused_at_a_failure_is_fixed_and_retried_on_the_run_page(app):
    """Pause when a node fails: the page says which node failed and why, its parameters are
    changed beside the error, Retry starts it again in the same run, Resume finishes the rest."""
    from ui.services import get_run_manager

    at = app.run()
    data = chain("fix-me", {"agent": "test.fail", "params": {"fail_times": -1, "message": "bad rule"}})
    data["nodes"].append({"id": "after", "agent": "test.echo"})
    data["edges"].append({"source": "last", "target": "after"})
    open_in_designer(at, data)
    at.switch_page("pages/run.py").run()
    at.selectbox(key="launch.source").select("Open in the designer: fix-me").run()
    at.checkbox(key="launch.on_failure").check().run()
    at.button(key="launch.start").click().run()
    assert not at.exception, at.exception
    run_id, manager = at.session_state["run_id"], get_run_manager()
    at = poll(at, lambda a: any("failed (RuntimeError" in i.value for i in a.info))
    note = next(i.value for i in at.info if "failed (RuntimeError" in i.value).replace("\\", "")
    assert note.startswith("**Paused**: `last` failed (RuntimeError: node 'last'")
    assert [e.label for e in at.expander if "the run holds it" in e.label] == ["last failed: the run holds it"]
    assert node_statuses(at) == {"src": "done", "mid": "done", "last": "failed", "after": "waiting_inputs"}
    at.number_input(key=f"monitor.amend.{run_id}.last.fail_times").set_value(0).run()
    assert manager.workflow(run_id).node("last").params["fail_times"] == 0
    at.button(key=f"monitor.retry.{run_id}.last").click().run()
    at = poll(at, lambda a: node_statuses(a).get("last") == "done")
    assert node_statuses(at)["after"] == "queued"  # the retry was one step: the run is still paused
    at.button(key="monitor.resume").click().run()
    at = poll(at, lambda a: "succeeded" in progress_text(a))
    assert node_statuses(at) == {"src": "done", "mid": "done", "last": "done", "after": "done"}


def test_the_run_form_sets_the_runs_priority_and_what_to_compute_again(app):
    from ui.services import get_run_manager

    at = app.run()
    at.switch_page("pages/run.py").run()
    at.selectbox(key="launch.source").select("Template: two-stage").run()
    at.number_input(key="launch.scale").set_value(0.002).run()
    at.number_input(key="launch.priority").set_value(7).run()
    at.multiselect(key="launch.rerun.Template: two-stage").select("cls").run()
    at.button(key="launch.start").click().run()
    assert not at.exception, at.exception
    run_id = at.session_state["run_id"]
    assert get_run_manager().snapshot(run_id).priority == 7
    assert get_run_manager().snapshot(run_id).options["priority"] == 7
    assert list(get_run_manager().snapshot(run_id).options["rerun"]) == ["cls"]  # "Compute again from"


def test_a_live_runs_priority_is_changed_on_its_page_while_others_run(app):
    from engine.runs import RunOptions
    from engine.workflow import workflow_from_data
    from ui.services import get_run_manager

    at = app.run()
    manager = get_run_manager()
    wf = workflow_from_data(chain("busy", {"agent": "test.echo"}))
    mine = manager.submit(wf, RunOptions(start_paused=True, use_cache=False))  # paused: both stay active
    other = manager.submit(wf, RunOptions(start_paused=True, use_cache=False))
    try:
        at.session_state["run_id"] = mine.run_id
        at.switch_page("pages/run.py").run()
        assert not at.exception, at.exception
        box = at.number_input(key=f"monitor.priority.{mine.run_id}")
        assert box.value == 0
        box.set_value(9).run()
        assert manager.snapshot(mine.run_id).priority == 9 and manager.snapshot(other.run_id).priority == 0
    finally:
        mine.cancel()
        other.cancel()


def test_a_workflow_with_components_runs_from_the_run_page_node_by_node(app):
    at = start(app.run(), "Template: support-desks")
    at = poll(at, lambda a: "succeeded" in progress_text(a))
    assert "succeeded" in progress_text(at), progress_text(at)
    statuses = node_statuses(at)
    assert {"general/intent", "general/route", "payments/route"} <= set(statuses)  # each node inside on its own
    assert set(statuses.values()) == {"done"}
    assert {r["node"] for r in chart_rows(at, "gantt") if r["kind"] == "actual"} >= {"payments/entities"}
    components = next(df.value for df in at.dataframe if "component" in df.value.columns)
    assert list(components["component"]) == ["general", "payments"] and set(components["of"]) == {"triage"}
    assert list(components["nodes"]) == [3, 3] and set(components["status"]) == {"done"}
    assert all(components["busy_s"] >= 0) and all(components["span_s"] >= 0)


def test_the_live_view_refreshes_slowly_while_a_paused_run_waits() -> None:
    from types import SimpleNamespace

    from ui.monitor.run_page import IDLE_PAUSED_S, REFRESH_S, live_every

    def snap(status: str, paused: bool, *nodes: str) -> Any:
        return SimpleNamespace(status=status, paused=paused, nodes={str(i): {"status": n} for i, n in enumerate(nodes)})

    assert live_every(snap("running", False, "running")) == REFRESH_S
    assert live_every(snap("running", True, "running", "queued")) == REFRESH_S  # a step's node runs
    assert live_every(snap("running", True, "failed", "waiting_inputs")) == IDLE_PAUSED_S > REFRESH_S
    assert live_every(snap("succeeded", False, "done")) is None
