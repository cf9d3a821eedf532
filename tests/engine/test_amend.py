"""What of a node can change in a run under way (``engine.amend.setting_changes``), and what of a
drawn workflow the run it started can still take (``pending_changes``, the designer's side)."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.amend import as_run, pending_changes, setting_changes
from engine.errors import AmendError
from engine.registry import default_registry
from engine.workflow import NodeSpec, Workflow


def _node(**fields) -> NodeSpec:
    return NodeSpec.model_validate({"id": "route", "agent": "flow.branch", **fields})


def test_each_setting_that_differs_is_one_line() -> None:
    before = _node(params={"value": 0.5, "field": "score"}, label="Route", position={"x": 1, "y": 2})
    after = _node(params={"value": 0.7, "field": "score", "op": ">="}, label="Route it", position={"x": 9, "y": 9},
                  resources={"memory_mb": 512}, lifecycle={"execution": {"timeout_s": 30}}, breakpoint=True,
                  break_when={"field": "score", "op": "<", "value": 0.2}, faults={"fail_attempts": 1})
    assert setting_changes(before, after) == [
        "op (default) -> '>='", "value 0.5 -> 0.7",
        "resources.memory_mb (default) -> 512",
        "lifecycle.execution.timeout_s (default) -> 30",
        "breakpoint off -> on",
        "breakpoint condition none -> score < 0.2",
        f"fault drill none -> {after.faults.describe()}",
    ]
    assert setting_changes(before, before.model_copy(update={"label": "x"})) == []  # how it is drawn: no change
    long = _node(params={"value": 0.5, "field": "s" * 100})
    assert setting_changes(before, long) == ["field 'score' -> '" + "s" * 56 + "..."]


@pytest.mark.parametrize(("change", "named"), [
    ({"agent": "flow.limit"}, "agent"), ({"disabled": True}, "disabled"), ({"bypass": True}, "bypass"),
    ({"pin": {"key": "0" * 32, "run_id": "r1"}}, "pin"),
])
def test_what_is_not_a_setting_cannot_change_in_a_run(change: dict, named: str) -> None:
    with pytest.raises(AmendError, match=rf"node 'route': its {named} changed, which a run under way cannot take"):
        setting_changes(_node(), _node(**change))


def _wf(nodes: list[dict], edges: list[tuple[str, str]]) -> Workflow:
    return Workflow.model_validate({"schema_version": 1, "name": "w", "nodes": nodes,
                                    "edges": [{"source": s, "target": t} for s, t in edges]})


SOURCE = {"id": "src", "agent": "test.texts", "params": {"n": 3}}


def test_pending_changes_sort_the_edits_by_what_the_run_can_still_take() -> None:
    ran = _wf([SOURCE, {"id": "a", "agent": "test.tag"}, {"id": "b", "agent": "test.tag"}],
              [("src", "a"), ("a", "b")])
    now = _wf([{**SOURCE, "params": {"n": 4}}, {"id": "a", "agent": "test.tag", "params": {"suffix": "!"}},
               {"id": "b", "agent": "test.tag", "label": "moved"}], [("src", "a"), ("a", "b")])
    pending = pending_changes(ran, now, {"src": "done", "a": "queued", "b": "waiting_inputs"})
    assert pending.changes == {"a": ["suffix (default) -> '!'"]}
    assert pending.too_late == {"src": ["n 3 -> 4"]}
    assert pending.other == [] and pending
    assert not pending_changes(ran, ran, {})


def test_pending_changes_name_what_no_run_under_way_can_take() -> None:
    ran = _wf([SOURCE, {"id": "a", "agent": "test.tag"}, {"id": "b", "agent": "test.tag"}],
              [("src", "a"), ("a", "b")])
    rewired = _wf([SOURCE, {"id": "a", "agent": "test.tag"}, {"id": "b", "agent": "test.tag"}],
                  [("src", "a"), ("src", "b")])
    assert pending_changes(ran, rewired, {}).other == ["the wires changed"]
    grown = _wf([SOURCE, {"id": "a", "agent": "test.echo"}, {"id": "c", "agent": "test.tag"}],
                [("src", "a"), ("a", "c")])
    assert pending_changes(ran, grown, {}).other == ["a: its agent changed", "b was removed or switched off",
                                                     "c is new"]


def test_as_run_leaves_out_disabled_nodes_and_expands_components() -> None:
    registry = default_registry()
    wf = _wf([SOURCE, {"id": "a", "agent": "test.tag"}, {"id": "off", "agent": "test.tag", "disabled": True}],
             [("src", "a"), ("src", "off")])
    assert as_run(wf, registry).node_ids() == ["src", "a"]


@pytest.mark.parametrize("path", sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json")),
                         ids=lambda p: p.stem)
def test_a_template_as_drawn_has_no_pending_change_against_its_own_run(path: Path, tmp_path: Path) -> None:
    """The designer compares what is drawn (``as_run``) with what the run executes: unchanged, a
    template (with components, disabled or bypassed nodes) shows no notice at all."""
    from engine.results import ResultStore
    from engine.runs import RunManager, RunOptions
    from engine.workflow import load_workflow

    wf = load_workflow(path)
    m = RunManager(results=ResultStore(tmp_path / "results"))
    try:
        handle = m.submit(wf, RunOptions(start_paused=True, use_cache=False))
        statuses = {nid: n["status"] for nid, n in handle.snapshot().nodes.items()}
        assert not pending_changes(m.workflow(handle.run_id), as_run(wf, m.registry), statuses)
        handle.cancel()
    finally:
        m.shutdown(timeout=10)


def test_switched_off_and_bypassed_nodes_are_no_pending_change(tmp_path: Path) -> None:
    from engine.results import ResultStore
    from engine.runs import RunManager, RunOptions
    from engine.workflow import load_workflow

    wf = load_workflow(Path(__file__).resolve().parents[2] / "examples" / "customer-service.json")
    flags = {"other_csv": {"disabled": True}, "priority": {"bypass": True}, "route": {"breakpoint": True}}
    wf = wf.model_copy(update={"nodes": tuple(n.model_copy(update=flags.get(n.id, {})) for n in wf.nodes)})
    m = RunManager(results=ResultStore(tmp_path / "results"))
    try:
        handle = m.submit(wf, RunOptions(start_paused=True, use_cache=False))
        ran = m.workflow(handle.run_id)
        assert ran.node("other_csv") is None and ran.node("priority") is None  # what the run left out
        statuses = {nid: n["status"] for nid, n in handle.snapshot().nodes.items()}
        assert not pending_changes(ran, as_run(wf, m.registry), statuses)
        handle.cancel()
    finally:
        m.shutdown(timeout=10)
