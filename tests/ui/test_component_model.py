"""The canvas side of components, without a browser: palette entries, how an instance is drawn, its
state from the nodes inside, findings moved onto it, and copy/paste carrying the definitions."""

from __future__ import annotations

from engine.issues import Issue
from engine.registry import default_registry
from engine.workflow import Workflow
from ui.graphmodel import canvas_graph, component_states, copy_of, palette_of, paste
from ui.render import issues_by_node

REG = default_registry()
TAGS = {"name": "tags", "description": "tag twice",
        "nodes": [{"id": "a", "agent": "test.tag"}, {"id": "b", "agent": "test.tag"}],
        "edges": [{"source": "a", "target": "b"}],
        "inputs": [{"name": "texts", "node": "a"}], "outputs": [{"name": "tagged", "node": "b"}]}


def _wf(components: list[dict] = (TAGS,), **instance: object) -> Workflow:
    return Workflow.model_validate({
        "schema_version": 1, "name": "w", "components": list(components),
        "nodes": [{"id": "src", "agent": "test.texts", "position": {"x": 0, "y": 0}},
                  {"id": "t", "agent": "component:tags", "position": {"x": 300, "y": 0}, **instance}],
        "edges": [{"source": "src", "target": "t", "target_port": "texts"}]})


def test_the_palette_offers_each_component_with_its_ports() -> None:
    entry = next(e for e in palette_of(REG, _wf()) if e["category"] == "components")
    assert (entry["name"], entry["label"], entry["description"]) == ("component:tags", "tags", "tag twice")
    assert entry["inputs"] == [{"name": "texts", "kind": "text_batch", "required": True, "multiple": False}]
    assert [p["name"] for p in entry["outputs"]] == ["tagged"]
    assert not [e for e in palette_of(REG) if e["category"] == "components"]


def test_an_instance_is_drawn_as_a_component_named_after_it() -> None:
    graph = canvas_graph(_wf(), REG)
    drawn = next(n for n in graph["nodes"] if n["id"] == "t")
    assert (drawn["component"], drawn["inner"], drawn["label"], drawn["sub"]) == ("tags", 2, "tags", "2 nodes inside")
    labelled = next(n for n in canvas_graph(_wf(label="My tags", params={"b/suffix": "!"}), REG)["nodes"] if n["id"] == "t")
    assert labelled["label"] == "My tags" and labelled["sub"] == "b/suffix=!"
    missing = next(n for n in canvas_graph(_wf(components=[]), REG)["nodes"] if n["id"] == "t")
    assert missing["sub"] == "no such component"


def test_an_instance_takes_its_state_from_the_nodes_inside() -> None:
    wf = _wf()

    def state(a: str, b: str) -> str:
        return component_states({"src": "done", "t/a": a, "t/b": b}, wf)["t"]

    assert state("done", "running") == "running"
    assert state("failed", "skipped") == "failed"
    assert state("done", "waiting_inputs") == "waiting_inputs"
    assert state("cached", "cached") == "cached"
    assert state("cached", "done") == "done"
    assert component_states({}, wf) == {}


def test_findings_inside_an_instance_are_drawn_on_it_without_their_port() -> None:
    issues = [Issue("invalid_param", "bad", "t/b", "suffix"), Issue("missing_input", "m", "src", "texts")]
    drawn = issues_by_node(issues, ["t"])
    assert drawn["t"] == [{"severity": "error", "message": "bad", "port": None}]
    assert drawn["src"][0]["port"] == "texts"


def test_copy_and_paste_carry_the_component_and_rename_a_clashing_one() -> None:
    clip = copy_of(_wf(), ["t"])
    assert [c.name for c in clip.components] == ["tags"]
    other = Workflow.model_validate({"schema_version": 1, "name": "o", "nodes": []})
    pasted, ids = paste(other, clip)
    assert pasted.node(ids[0]).agent == "component:tags" and pasted.component("tags") == _wf().component("tags")
    again, _ = paste(pasted, clip)  # the same definition: not added twice
    assert [c.name for c in again.components] == ["tags"]
    changed = _wf(components=[{**TAGS, "description": "another tags"}])
    into, ids = paste(changed, clip)
    assert [c.name for c in into.components] == ["tags", "tags 2"]
    assert into.node(ids[0]).agent == "component:tags 2" and into.component("tags 2").description == "tag twice"


def test_a_component_the_library_holds_in_another_version_is_marked() -> None:
    from types import SimpleNamespace

    from ui.component_library import mark_library_versions

    wf = _wf()
    same = SimpleNamespace(name="tags", definitions=(wf.component("tags"),), updated=0.0, owner=None)
    other = SimpleNamespace(name="tags", definitions=(wf.component("tags").model_copy(update={"description": "v2"}),),
                            updated=0.0, owner=None)
    marked = {n["id"]: n for n in mark_library_versions(canvas_graph(wf, REG), [other], wf)["nodes"]}
    assert marked["t"].get("newer") is True and "newer" not in marked["src"]
    unmarked = {n["id"]: n for n in mark_library_versions(canvas_graph(wf, REG), [same], wf)["nodes"]}
    assert "newer" not in unmarked["t"]
