"""The component library in the database: saved with the components it holds, replaced by name per
owner, listed for a user (their own and the shared ones), deleted; kept across a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.workflow import ComponentSpec, Workflow, load_workflow
from storage import Store
from storage.errors import ComponentNotFoundError

ROOT = Path(__file__).resolve().parents[2]


def _nested() -> Workflow:
    outer = {"name": "outer", "description": "pre then triage",
             "nodes": [{"id": "pre", "agent": "test.echo"}, {"id": "in", "agent": "component:triage"}],
             "edges": [{"source": "pre", "target": "in"}], "inputs": [{"name": "x", "node": "pre"}]}
    desks = load_workflow(ROOT / "examples" / "support-desks.json")
    return desks.model_copy(update={"components": (*desks.components, ComponentSpec.model_validate(outer))})


def test_a_component_is_kept_with_what_it_holds_and_replaced_by_name(store: Store, db_url: str) -> None:
    wf = _nested()
    first = store.save_component(wf, "outer")
    [entry] = store.list_components()
    assert (entry.name, entry.description, entry.nodes) == ("outer", "pre then triage", 2)
    assert [d.name for d in entry.definitions] == ["outer", "triage"]  # it holds a triage: kept with it
    again = store.save_component(wf.model_copy(update={"components": tuple(
        c.model_copy(update={"description": "v2"}) if c.name == "outer" else c for c in wf.components)}), "outer")
    assert again == first and [c.description for c in store.list_components()] == ["v2"]
    store.close()
    reopened = Store(db_url)
    try:
        assert [c.name for c in reopened.list_components()] == ["outer"]
        reopened.delete_component(first)
        assert reopened.list_components() == []
        with pytest.raises(ComponentNotFoundError):
            reopened.delete_component(first)
    finally:
        reopened.close()


def test_a_user_sees_their_own_and_the_shared_components(store: Store) -> None:
    wf = load_workflow(ROOT / "examples" / "support-desks.json")
    store.save_component(wf, "triage", owner="teacher", shared=True)
    store.save_component(wf, "triage", owner="ann", shared=False)
    store.save_component(wf.model_copy(update={"components": (wf.components[0].model_copy(update={"name": "mine"}),)}),
                         "mine", owner="bob", shared=False)
    assert [(c.name, c.owner) for c in store.list_components("ann")] == [("triage", "ann")]  # hers over the shared
    assert [(c.name, c.owner) for c in store.list_components("bob")] == [("mine", "bob"), ("triage", "teacher")]
    assert sorted((c.name, c.owner) for c in store.list_components()) == [
        ("mine", "bob"), ("triage", "ann"), ("triage", "teacher")]
    with pytest.raises(ComponentNotFoundError, match="no component named 'nope'"):
        store.save_component(wf, "nope")
