"""History's class view: each person's best planned makespan of one workflow, side by side."""

from __future__ import annotations

from types import SimpleNamespace

from streamlit.testing.v1 import AppTest

from ui.monitor.classview import class_rows


def _run(user: str | None, predicted: float | None, status: str = "succeeded", policy: str = "fifo",
         created: float = 0.0, run_id: str = "r") -> SimpleNamespace:
    return SimpleNamespace(id=run_id, user=user, predicted_makespan_s=predicted, status=status, policy=policy,
                           created=created, workflow_name="w")


def test_each_person_is_compared_by_their_best_succeeded_plan() -> None:
    rows = class_rows([
        _run("ann", 360, policy="fifo", run_id="a1", created=1), _run("ann", 240, policy="critical_path", run_id="a2",
                                                                      created=2),
        _run("bob", 300, run_id="b1", created=1), _run("bob", 100, status="failed", run_id="b2", created=3),
        _run("cy", None, status="failed", run_id="c1"), _run(None, 500, run_id="n1")])
    assert [(r["user"], r["best_planned_s"], r["policy"], r["best_run"]) for r in rows] == [
        ("ann", 240, "critical_path", "a2"), ("bob", 300, "fifo", "b1"), ("(no user)", 500, "fifo", "n1"),
        ("cy", None, None, None)]  # a failed run's plan does not count; people without a plan last
    bob = next(r for r in rows if r["user"] == "bob")
    assert (bob["runs"], bob["succeeded"], bob["last"]) == (2, 1, "failed")


def test_the_history_page_shows_the_class_for_one_workflow(app: AppTest) -> None:
    from engine.registry import default_registry
    from engine.runs import RunManager, RunOptions
    from engine.workflow import load_workflow
    from storage import Store
    from tests.recording import record_runs
    from ui.session import EXAMPLES_DIR

    store = Store()  # this test's database (the fixture's data folder)
    try:
        wf = load_workflow(EXAMPLES_DIR / "two-stage.json")
        for user, policy in (("ann", "critical_path"), ("bob", "fifo")):
            record_runs(store, RunManager(registry=default_registry(), machine=None), [wf],
                        RunOptions(time_scale=0.001, user=user, policy=policy))
    finally:
        store.close()
    at = app.run()
    at.switch_page("pages/history.py").run()
    assert not at.exception
    assert not [e for e in at.expander if "Class:" in e.label]  # all workflows: no class view
    at.selectbox(key="history.wf").select("two-stage").run()
    assert [e.label.replace("\\", "") for e in at.expander if "Class:" in e.label] == ["Class: 2 people ran two-stage"]
    table = next(df.value for df in at.dataframe if "best planned (s)" in df.value.columns or "best_planned_s" in
                 df.value.columns)
    assert sorted(table["user"]) == ["ann", "bob"]
