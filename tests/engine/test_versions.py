"""Agent versions: params saved for an older version of an agent are upgraded by its migrations in
validation, plans, runs, the designer and ``servicegrid upgrade``; a node saved for a newer version
than the one installed is named."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from engine.events import RunStatus
from engine.planner import plan_workflow
from engine.registry import default_registry
from engine.resources import Capacity
from engine.runs import RunManager
from engine.spec import ParamMigration
from engine.validation import validate
from engine.versions import newer_than_installed, upgrade, version_key
from engine.workflow import Workflow, load_workflow
from servicegrid.cli import main

REG = default_registry()


def _rename_secs(params: dict) -> dict:
    if "secs" in params:
        params["seconds"] = params.pop("secs")
    return params


@pytest.fixture
def sleep_v2(monkeypatch: pytest.MonkeyPatch) -> None:
    """test.sleep at version 2.0, which renamed its parameter ``secs`` to ``seconds``."""
    spec = dataclasses.replace(REG.get("test.sleep"), version="2.0", migrations=(
        ParamMigration("2.0", "renamed secs to seconds", _rename_secs),))
    monkeypatch.setitem(REG._specs, "test.sleep", spec)


def _wf(params: dict, version: str | None = None, components: list | None = None) -> Workflow:
    sleep = {"id": "s", "agent": "test.sleep", "params": params, **({"version": version} if version else {})}
    return Workflow.model_validate({"schema_version": 1, "name": "v", "nodes": [
        {"id": "src", "agent": "test.source"}, sleep], "edges": [{"source": "src", "target": "s"}],
        "components": components or []})


def test_old_params_are_upgraded_and_named_not_refused(sleep_v2: None) -> None:
    old = _wf({"secs": 0.01})
    issues = validate(old, REG)
    assert [(i.code, i.node, i.severity) for i in issues] == [("agent_upgraded", "s", "warning")]
    assert "test.sleep 2.0 changed its parameters since the version it was saved with (renamed secs to seconds)" \
        in issues[0].message
    upgraded, changes = upgrade(old, REG)
    assert upgraded.node("s").params == {"seconds": 0.01} and upgraded.node("s").version == "2.0"
    assert [(c.node, c.was, c.now, c.notes) for c in changes] == [("s", None, "2.0", ("renamed secs to seconds",))]
    assert validate(upgraded, REG) == []
    assert {n.id for n in plan_workflow(old, REG, Capacity(cpu=2, memory_mb=1000, gpus=())).nodes} == {"src", "s"}


def test_params_in_the_new_form_are_left_alone(sleep_v2: None) -> None:
    current = _wf({"seconds": 0.01})
    assert upgrade(current, REG) == (current, [])  # the same object: nothing to do
    assert validate(current, REG) == []


def test_a_versioned_node_gets_only_the_newer_migrations(sleep_v2: None, monkeypatch: pytest.MonkeyPatch) -> None:
    def double(params: dict) -> dict:  # not idempotent on purpose: the version must keep it from running twice
        return {**params, "seconds": params.get("seconds", 0.05) * 2}

    spec = dataclasses.replace(REG.get("test.sleep"), version="3.0", migrations=(
        ParamMigration("2.0", "renamed secs to seconds", _rename_secs), ParamMigration("3.0", "doubled", double)))
    monkeypatch.setitem(REG._specs, "test.sleep", spec)
    once, changes = upgrade(_wf({"secs": 1.0}, version="1.0"), REG)
    assert once.node("s").params == {"seconds": 2.0} and [c.notes for c in changes] == [
        ("renamed secs to seconds", "doubled")]
    assert upgrade(once, REG) == (once, [])  # saved at 3.0: nothing more
    assert upgrade(_wf({"seconds": 1.0}, version="2.0"), REG)[0].node("s").params == {"seconds": 2.0}


def test_a_node_saved_for_a_newer_version_is_named(sleep_v2: None) -> None:
    ahead = _wf({"seconds": 0.01}, version="2.10")
    assert [(n.node, n.saved, n.installed) for n in newer_than_installed(ahead, REG)] == [("s", "2.10", "2.0")]
    [issue] = validate(ahead, REG)
    assert (issue.code, issue.node, issue.severity) == ("agent_newer", "s", "warning")
    assert version_key("2.10") > version_key("2.9") > version_key("2.0") and version_key("1.0rc") > version_key("1.0")


def test_nodes_inside_components_are_upgraded_too(sleep_v2: None) -> None:
    comp = {"name": "slow", "nodes": [{"id": "in", "agent": "test.sleep", "params": {"secs": 0.01}}],
            "inputs": [{"name": "in", "node": "in"}]}
    wf = Workflow.model_validate({"schema_version": 1, "nodes": [
        {"id": "src", "agent": "test.source"}, {"id": "c", "agent": "component:slow"}],
        "edges": [{"source": "src", "target": "c"}], "components": [comp]})
    issues = validate(wf, REG)
    assert [(i.code, i.node) for i in issues] == [("agent_upgraded", None)]
    assert issues[0].message.startswith("component 'slow', node 'in': test.sleep 2.0 changed its parameters")
    assert upgrade(wf, REG)[0].component("slow").nodes[0].params == {"seconds": 0.01}


def test_a_run_uses_the_upgraded_params(sleep_v2: None, tmp_path: Path) -> None:
    from engine.results import ResultStore

    manager = RunManager(results=ResultStore(tmp_path / "results"))
    try:
        run = manager.submit(_wf({"secs": 0.01}))
        assert run.wait(10) == RunStatus.SUCCEEDED
        ran = manager.workflow(run.run_id)
        assert ran.node("s").params == {"seconds": 0.01} and ran.node("s").version == "2.0"
    finally:
        manager.shutdown()


def test_servicegrid_upgrade_checks_and_rewrites_a_file(sleep_v2: None, tmp_path: Path, capsys) -> None:
    path = tmp_path / "old.json"
    path.write_text(json.dumps(_wf({"secs": 0.5}).to_dict()))
    assert main(["upgrade", str(path), "--check"]) == 1
    out = capsys.readouterr().out
    assert "s: test.sleep (unversioned) -> 2.0: renamed secs to seconds" in out and "1 node(s) to upgrade" in out
    assert load_workflow(path).node("s").params == {"secs": 0.5}  # --check writes nothing
    assert main(["upgrade", str(path)]) == 0
    assert load_workflow(path).node("s").params == {"seconds": 0.5}
    assert main(["upgrade", str(path)]) == 0
    assert "every node's params are for its agent's current version" in capsys.readouterr().out
