"""Shared by the template tests: where templates live, how one runs, what every template file must be.

A plain module (not conftest) so the test files can import it by a name no other test folder uses."""

from __future__ import annotations

from pathlib import Path

from engine.events import RunStatus
from engine.runs import RunHandle, RunManager, RunOptions
from engine.validation import validate
from engine.workflow import load_workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_template(manager: RunManager, name: str, time_scale: float = 1.0) -> RunHandle:
    """Run ``examples/<name>.json`` without the cache; fails the test unless it succeeds."""
    workflow = load_workflow(EXAMPLES / f"{name}.json")
    handle = manager.submit(workflow, RunOptions(use_cache=False, time_scale=time_scale))
    status = handle.wait(120)
    failed = {k: v.get("error") for k, v in handle.snapshot().nodes.items() if v.get("error")}
    assert status == RunStatus.SUCCEEDED, failed
    return handle


def check_template_file(name: str) -> None:
    """A template has a description, positions laid out left to right, and no findings."""
    workflow = load_workflow(EXAMPLES / f"{name}.json")
    assert workflow.description and all(n.position is not None for n in workflow.nodes)
    xs = {n.id: n.position.x for n in workflow.nodes if n.position}
    assert all(xs[e.source] < xs[e.target] for e in workflow.edges)  # laid out left to right
    assert validate(workflow) == []
