"""The designer opens a workflow saved for an older version of an agent with its params upgraded:
one undo step, saved, and a toast naming what changed."""

from __future__ import annotations

import dataclasses

import pytest
from streamlit.testing.v1 import AppTest

from engine.registry import default_registry
from engine.spec import ParamMigration
from engine.workflow import Workflow
from ui import state


def test_opening_an_old_workflow_upgrades_its_params(app: AppTest, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from storage import Store

    registry = default_registry()

    def rename(params: dict) -> dict:
        if "secs" in params:
            params["seconds"] = params.pop("secs")
        return params

    monkeypatch.setitem(registry._specs, "test.sleep", dataclasses.replace(
        registry.get("test.sleep"), version="2.0", migrations=(ParamMigration("2.0", "renamed secs to seconds",
                                                                              rename),)))
    old = Workflow.model_validate({"schema_version": 1, "name": "old", "nodes": [
        {"id": "src", "agent": "test.source", "position": {"x": 0, "y": 0}},
        {"id": "s", "agent": "test.sleep", "params": {"secs": 0.5}, "position": {"x": 300, "y": 0}}],
        "edges": [{"source": "src", "target": "s"}]})
    store = Store(f"sqlite:///{tmp_path / 'ui.db'}")
    try:
        workflow_id, _ = store.save_workflow(old)
    finally:
        store.close()
    app.query_params[state.QP_WORKFLOW] = workflow_id
    app.run()
    assert not app.exception
    sess = app.session_state[state.DESIGNER]
    assert sess.workflow.node("s").params == {"seconds": 0.5} and sess.workflow.node("s").version == "2.0"
    assert sess.notice["text"].startswith("upgraded the parameters of 1 node for their agents' current versions: "
                                          "s (test.sleep 2.0): renamed secs to seconds")
    assert not sess.dirty  # saved as a new version at once
    assert sess.undo() and sess.workflow.node("s").params == {"secs": 0.5}  # Undo gives the saved form back
