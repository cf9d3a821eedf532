"""Workflows and validation results persist, are versioned, duplicated, soft-deleted, and survive a restart."""

from __future__ import annotations

import threading

import pytest
from event_streams import make_workflow

from engine.issues import Issue
from engine.workflow import Workflow
from storage import Store, WorkflowNotFoundError


def test_save_and_reload_after_restart(db_url: str, workflow: Workflow) -> None:
    with Store(db_url) as first:
        wid, version = first.save_workflow(workflow, owner="ada", message="first draft")
        first.save_validation(wid, version, [
            Issue(code="isolated_node", message="node 'x' is not connected", node="x", severity="warning"),
        ])
    assert version == 1
    with Store(db_url) as second:  # a new process would see the same
        assert second.get_workflow(wid) == workflow
        [summary] = second.list_workflows()
        assert (summary.id, summary.name, summary.owner, summary.latest_version) == (wid, "two-stage", "ada", 1)
        validation = second.latest_validation(wid)
        assert validation is not None and validation.ok and validation.version == 1
        assert validation.issues == (
            Issue(code="isolated_node", message="node 'x' is not connected", node="x", severity="warning"),
        )


def test_versions_accumulate_and_old_ones_stay_readable(store: Store) -> None:
    v1 = make_workflow("pipeline", ("a",))
    v2 = make_workflow("pipeline", ("a", "b"))
    wid, n1 = store.save_workflow(v1)
    same, n2 = store.save_workflow(v2, workflow_id=wid, message="add b")
    assert (same, n1, n2) == (wid, 1, 2)
    assert store.get_workflow(wid) == v2
    assert store.get_workflow(wid, version=1) == v1
    assert [(v.version, v.message) for v in store.workflow_versions(wid)] == [(1, ""), (2, "add b")]
    assert store.list_workflows()[0].latest_version == 2


def test_validation_with_an_error_is_not_ok(store: Store, workflow: Workflow) -> None:
    wid, version = store.save_workflow(workflow)
    assert store.latest_validation(wid) is None
    store.save_validation(wid, version, [])
    store.save_validation(wid, version, [Issue(code="cycle", message="a -> b -> a", hint="remove an edge")])
    latest = store.latest_validation(wid)
    assert latest is not None and not latest.ok
    assert [i.code for i in latest.issues] == ["cycle"]
    assert latest.issues[0].hint == "remove an edge"


def test_duplicate_copies_the_latest_version_under_a_new_name(store: Store, workflow: Workflow) -> None:
    wid, _ = store.save_workflow(workflow, owner="ada")
    copy_id, version = store.duplicate_workflow(wid, "two-stage (copy)")
    assert copy_id != wid and version == 1
    copy = store.get_workflow(copy_id)
    assert copy.name == "two-stage (copy)"
    assert copy.nodes == workflow.nodes and copy.edges == workflow.edges
    assert {w.name for w in store.list_workflows(owner="ada")} == {"two-stage", "two-stage (copy)"}


def test_delete_is_soft(store: Store, workflow: Workflow) -> None:
    wid, _ = store.save_workflow(workflow)
    keep, _ = store.save_workflow(make_workflow("other"))
    store.delete_workflow(wid)
    assert [w.id for w in store.list_workflows()] == [keep]
    deleted = {w.id: w.deleted for w in store.list_workflows(include_deleted=True)}
    assert deleted == {wid: True, keep: False}
    assert store.get_workflow(wid) == workflow  # still readable, e.g. by old runs


def test_unknown_workflow_says_how_to_find_one(store: Store) -> None:
    with pytest.raises(WorkflowNotFoundError, match="list_workflows") as err:
        store.get_workflow("nope")
    assert isinstance(err.value, LookupError)
    with pytest.raises(WorkflowNotFoundError):
        store.delete_workflow("nope")
    with pytest.raises(WorkflowNotFoundError):
        store.save_validation("nope", 1, [])
    wid, _ = store.save_workflow(make_workflow())
    with pytest.raises(WorkflowNotFoundError, match="version 7"):
        store.get_workflow(wid, version=7)


def test_concurrent_saves_of_one_workflow_get_distinct_versions(store: Store) -> None:
    wid, _ = store.save_workflow(make_workflow("shared"))
    errors: list[BaseException] = []

    def save(i: int) -> None:
        try:
            store.save_workflow(make_workflow("shared", ("a", f"n{i}")), workflow_id=wid)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [v.version for v in store.workflow_versions(wid)] == list(range(1, 8))
