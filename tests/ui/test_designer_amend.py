"""Edit and continue in the designer (``ui.designer_amend``): while the run started here is paused
at a breakpoint, settings changed on nodes it has not started are listed under the run row with
**Use in this run**; the run then has them, and what came too late is said apart."""

from __future__ import annotations

import time

from designer_kit import route_with_breakpoint
from streamlit.testing.v1 import AppTest

from ui import state
from ui.services import get_run_manager


def _paused_at_route(app: AppTest) -> str:
    route_with_breakpoint(app)
    app.button(key="designer_run").click().run()
    run_id = app.session_state[state.RUN_ID]
    manager = get_run_manager()
    end = time.monotonic() + 60
    while manager.snapshot(run_id).paused_at != "route":
        assert time.monotonic() < end, "the run never paused at route"
        time.sleep(0.05)
    return run_id


def _edit(app: AppTest, node_id: str, **params: object) -> None:
    sess = app.session_state[state.DESIGNER]
    sess.push(sess.workflow.model_copy(update={"nodes": tuple(
        n.model_copy(update={"params": {**n.params, **params}}) if n.id == node_id else n
        for n in sess.workflow.nodes)}))
    app.run()


def _text(app: AppTest) -> str:
    return " ".join(str(m.value) for m in [*app.markdown, *app.caption]).replace("\\", "").replace("`", "")


def test_edits_to_nodes_not_started_go_into_the_paused_run(app: AppTest) -> None:
    run_id = _paused_at_route(app)
    assert not [b for b in app.button if b.key == "designer_amend_apply"]  # nothing changed yet
    _edit(app, "route", escalate_amount=50)
    _edit(app, "requests", n=30)  # it ran already: for the next run
    text = _text(app)
    assert f"Changed since run {run_id} started, and not started yet: route (escalate_amount 500 -> 50)" in text
    assert "Already started or done in this run, so the change is for the next run (or **Run again from here**): " \
           "requests (n 60 -> 30)" in text
    app.button(key="designer_amend_apply").click().run()
    manager = get_run_manager()
    assert manager.workflow(run_id).node("route").params["escalate_amount"] == 50
    assert manager.workflow(run_id).node("requests").params["n"] == 60  # as it ran
    assert manager.snapshot(run_id).amended == {"route": ["escalate_amount 500 -> 50"]}
    notice = app.session_state[state.DESIGNER].notice
    assert notice["text"] == (f"run {run_id} takes the new settings (route: escalate_amount 500 -> 50): "
                              "Step or Resume to go on")
    assert "Changed since run" not in _text(app)  # nothing left to take
    manager.resume(run_id)
    assert manager.wait(run_id, 60) == "succeeded"
    (tickets,) = manager.outputs(run_id, "route").values()
    reasons = tickets["columns"]["reason"]
    assert any("≥ 50" in r for r in reasons) and not any("≥ 500" in r for r in reasons)  # the new amount, not the old


def test_a_node_that_started_meanwhile_is_refused_with_the_run_unchanged(app: AppTest) -> None:
    run_id = _paused_at_route(app)
    _edit(app, "route", min_confidence=0.9)
    manager = get_run_manager()
    manager.step(run_id)  # route starts before the button is pressed
    end = time.monotonic() + 60
    while manager.snapshot(run_id).nodes["route"]["status"] in ("queued", "waiting_resource"):
        assert time.monotonic() < end
        time.sleep(0.05)
    app.button(key="designer_amend_apply").click().run()
    assert manager.workflow(run_id).node("route").params["min_confidence"] == 0.5
    shown = " ".join(str(m.value) for m in app.warning).replace("\\", "")
    assert f"Nothing left to change in run {run_id}: the changed nodes have started." in shown
    manager.resume(run_id)
    manager.wait(run_id, 60)


def test_a_failed_node_held_by_the_run_is_fixed_and_retried_from_the_designer(app: AppTest) -> None:
    """Pause on failure in the designer: the run holds the failed node; its changed settings go
    into the run (Use in this run), Retry it starts it again, and Resume finishes the run."""
    from engine.workflow import workflow_from_data
    from ui.editor import DesignerSession

    app.run()
    app.session_state[state.DESIGNER] = DesignerSession(workflow_from_data({
        "schema_version": 1, "name": "fix-me",
        "nodes": [{"id": "src", "agent": "test.source", "params": {"value": [1]}},
                  {"id": "check", "agent": "test.fail", "params": {"fail_times": -1}},
                  {"id": "after", "agent": "test.echo"}],
        "edges": [{"source": "src", "target": "check"}, {"source": "check", "target": "after"}]}))
    app.run()
    app.checkbox(key="designer_pause_on_failure").check().run()
    app.button(key="designer_run").click().run()
    run_id, manager = app.session_state[state.RUN_ID], get_run_manager()
    end = time.monotonic() + 60
    while not manager.snapshot(run_id).held:
        assert time.monotonic() < end, "the run never held the failed node"
        time.sleep(0.05)
    app.session_state[state.DESIGNER].select("check")
    app.run()
    captions = _text(app)
    assert f"Run {run_id}: paused: check failed (RuntimeError). Select it to see why" in captions
    assert "The run holds it, and what follows it" in captions
    _edit(app, "check", fail_times=0)
    assert f"Changed since run {run_id} started, and not started yet: check (fail_times -1 -> 0)" in _text(app)
    app.button(key="designer_amend_apply").click().run()
    assert manager.workflow(run_id).node("check").params["fail_times"] == 0
    app.button(key="designer.retry.check").click().run()
    end = time.monotonic() + 60
    while manager.snapshot(run_id).nodes["check"]["status"] != "done":
        assert time.monotonic() < end, "the retried node never finished"
        time.sleep(0.05)
    manager.resume(run_id)
    assert manager.wait(run_id, 60) == "succeeded"


def test_the_editor_refreshes_fast_while_something_runs_and_slowly_while_a_paused_run_waits() -> None:
    from ui.designer_run import IDLE_PAUSED_S, REFRESH_S, poll_every

    assert poll_every(None, {}) is None and poll_every("succeeded", {"a": "done"}) is None
    assert poll_every("running", {"a": "queued"}) == REFRESH_S
    assert poll_every("paused", {"a": "running", "b": "queued"}) == REFRESH_S  # a step's node runs
    assert poll_every("paused", {"a": "failed", "b": "waiting_inputs"}) == IDLE_PAUSED_S > REFRESH_S
