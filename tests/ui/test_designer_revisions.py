"""The canvas <-> Python revision hand-off: a report based on an older revision (the canvas had not
yet drawn Python's latest push) is replayed onto the current workflow, or refused with a message;
a user's discrete action is never dropped silently."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.errors import WorkflowFileError
from engine.registry import default_registry
from engine.workflow import NOTE_MAX_CHARS, EdgeSpec, Position, Workflow, dump_workflow, workflow_from_data
from ui.designer_rebase import rebase, same_edge
from ui.editor import Accepted, DesignerSession
from ui.graphmodel import canvas_graph, ensure_positions, replace_node

THREE = {"schema_version": 1, "name": "three",
         "nodes": [{"id": "a", "agent": "sim.task", "params": {"duration_s": 1}},
                   {"id": "b", "agent": "sim.task", "params": {"duration_s": 2}},
                   {"id": "c", "agent": "sim.task", "params": {"duration_s": 3}}],
         "edges": [{"source": "a", "target": "b"}]}


def session() -> DesignerSession:
    return DesignerSession(ensure_positions(workflow_from_data(THREE)))


def drawn(sess: DesignerSession) -> dict[str, Any]:
    """What the canvas holds after drawing the session: the graph stamped with its revision."""
    graph = canvas_graph(sess.workflow, default_registry(), sess.selected)
    graph["rev"] = sess.rev
    return graph


def band_select(graph: dict[str, Any], *ids: str) -> dict[str, Any]:
    return {**graph, "selected": list(ids)}


def delete_selected(graph: dict[str, Any]) -> dict[str, Any]:
    gone = set(graph["selected"])
    return {**graph, "selected": [], "nodes": [n for n in graph["nodes"] if n["id"] not in gone],
            "edges": [e for e in graph["edges"] if e["src"] not in gone and e["dst"] not in gone]}


def move(graph: dict[str, Any], node_id: str, x: float, y: float) -> dict[str, Any]:
    nodes = [{**n, "x": x, "y": y} if n["id"] == node_id else n for n in graph["nodes"]]
    return {**graph, "nodes": nodes}


def with_param(sess: DesignerSession, node_id: str, **params: Any) -> Workflow:
    node = sess.workflow.node(node_id)
    assert node is not None
    return replace_node(sess.workflow, node.model_copy(update={"params": {**node.params, **params}}))


def test_select_and_delete_right_after_a_layout_push_reach_python() -> None:
    # the browser bug: Python pushed a layout (and, in the same breath, a panel edit) before the
    # canvas drew it, so the band selection and the Delete came stamped with the older revision
    sess = session()
    canvas = drawn(sess)
    sess.layout()
    sess.push(with_param(sess, "c", duration_s=9))
    laid_out = sess.workflow.node("c").position

    selection = band_select(canvas, "a", "b")
    assert sess.accept(selection) is Accepted.SELECTION
    assert sess.selected == ["a", "b"]
    assert sess.accept(delete_selected(selection)) is Accepted.CHANGED
    assert sess.workflow.node_ids() == ["c"]
    assert sess.workflow.edges == ()
    assert sess.workflow.node("c").params == {"duration_s": 9}  # Python's edit kept
    assert sess.workflow.node("c").position == laid_out  # and its layout
    assert sess.dirty and sess.notice is None
    assert sess.undo() and sess.workflow.node_ids() == ["a", "b", "c"]  # one undo step for the delete


def test_a_replayed_action_is_pushed_back_so_the_canvas_adopts_the_merge() -> None:
    sess = session()
    canvas = drawn(sess)
    sess.push(with_param(sess, "a", duration_s=5))
    rev = sess.rev
    assert sess.accept(move(canvas, "b", 700, 80)) is Accepted.CHANGED
    assert sess.rev == rev + 1  # a new revision: the canvas must draw Python's edit too
    assert sess.workflow.node("b").position == Position(x=700, y=80)
    assert sess.workflow.node("a").params == {"duration_s": 5}
    after = drawn(sess)
    assert sess.accept(after) is Accepted.IGNORED  # the adopted graph echoes nothing new


def test_the_same_old_report_twice_changes_nothing_more() -> None:
    sess = session()
    canvas = drawn(sess)
    sess.layout()
    deleted = delete_selected(band_select(canvas, "c"))
    assert sess.accept(deleted) is Accepted.CHANGED
    rev, undo_depth = sess.rev, len(sess.undo_stack)
    assert sess.accept(deleted) is Accepted.IGNORED
    assert (sess.rev, len(sess.undo_stack)) == (rev, undo_depth)
    # a later action still based on the old revision carries the earlier one too: replayed once
    assert sess.accept(move(deleted, "a", 5, 5)) is Accepted.CHANGED
    assert sess.workflow.node_ids() == ["a", "b"] and sess.workflow.node("a").position == Position(x=5, y=5)


def test_an_echo_of_an_older_revision_is_ignored() -> None:
    sess = session()
    canvas = drawn(sess)
    sess.push(with_param(sess, "a", duration_s=5))
    rev = sess.rev
    assert sess.accept(canvas) is Accepted.IGNORED
    assert sess.rev == rev and sess.workflow.node("a").params == {"duration_s": 5}


def test_an_action_on_a_node_python_removed_is_refused_with_a_message() -> None:
    sess = session()
    canvas = drawn(sess)
    sess.push(sess.workflow.model_copy(update={"nodes": sess.workflow.nodes[:2]}))  # e.g. an undo
    before, rev = sess.workflow, sess.rev
    assert sess.accept(move(canvas, "c", 1, 1)) is Accepted.CONFLICT
    assert sess.workflow == before
    assert sess.rev == rev + 1  # Python's state is pushed again; the canvas drops the refused move
    assert sess.notice is not None and sess.notice["kind"] == "error"
    assert "c was moved but no longer exists" in sess.notice["text"]


def test_a_connection_that_would_close_a_cycle_after_replay_is_refused() -> None:
    sess = session()
    canvas = drawn(sess)
    edges = (*sess.workflow.edges, EdgeSpec(source="b", target="c"))
    sess.push(sess.workflow.model_copy(update={"edges": edges}))
    report = {**canvas, "edges": [*canvas["edges"],
                                  {"id": "c.out->a.in", "src": "c", "srcPort": "out", "dst": "a", "dstPort": "in"}]}
    assert sess.accept(report) is Accepted.CONFLICT
    assert "cycle" in sess.notice["text"]
    assert len(sess.workflow.edges) == 2


def test_a_report_from_a_graph_no_longer_open_is_refused_not_applied() -> None:
    sess = session()
    report = move(drawn(sess), "a", 1, 1)
    report["rev"] = sess.rev + 5
    assert sess.accept(report) is Accepted.CONFLICT
    assert sess.workflow.node("a").position != Position(x=1, y=1)
    assert "no longer open" in sess.notice["text"]


def test_rebase_replays_adds_moves_deletes_and_connections() -> None:
    base = ensure_positions(workflow_from_data(THREE))
    theirs = base.model_copy(update={
        "nodes": (*[n for n in base.nodes if n.id != "b"],
                  base.nodes[0].model_copy(update={"id": "d", "position": Position(x=9, y=9)})),
        "edges": (EdgeSpec(source="a", source_port="out", target="d", target_port="in"),)})
    ours = base.model_copy(update={"name": "renamed", "edges": (EdgeSpec(source="a", target="b"),
                                                                 EdgeSpec(source="a", target="c"))})
    result = rebase(base, theirs, ours)
    assert result.workflow is not None and not result.conflicts
    assert result.workflow.name == "renamed"
    assert result.workflow.node_ids() == ["a", "c", "d"]
    assert [(e.source, e.target) for e in result.workflow.edges] == [("a", "c"), ("a", "d")]
    assert "deleted b" in result.actions and "added d" in result.actions


def test_an_omitted_port_matches_any_port_name() -> None:
    assert same_edge(EdgeSpec(source="a", target="b"), EdgeSpec(source="a", source_port="out", target="b"))
    assert not same_edge(EdgeSpec(source="a", source_port="x", target="b"),
                         EdgeSpec(source="a", source_port="y", target="b"))


def with_notes(graph: dict[str, Any], *notes: dict[str, Any]) -> dict[str, Any]:
    return {**graph, "notes": [*graph.get("notes", []), *notes]}


def test_notes_added_edited_moved_and_deleted_on_the_canvas_reach_the_workflow() -> None:
    sess = session()
    added = with_notes(drawn(sess), {"id": "note_1", "text": "Lab 1: <b>run</b> me", "x": 10, "y": -80, "w": 260})
    assert sess.accept(added) is Accepted.CHANGED
    note = sess.workflow.notes[0]
    assert (note.id, note.text, note.position, note.width) == ("note_1", "Lab 1: <b>run</b> me", Position(x=10, y=-80), 260)
    assert json.loads(dump_workflow(sess.workflow))["notes"][0]["text"] == "Lab 1: <b>run</b> me"  # saved as it is
    edited = drawn(sess)
    edited["notes"] = [{**edited["notes"][0], "text": "edited", "x": 50, "h": 600, "color": "blue"}]
    assert sess.accept(edited) is Accepted.CHANGED  # resized into a frame, and coloured
    note = sess.workflow.notes[0]
    assert (note.text, note.position.x, note.height, note.color) == ("edited", 50, 600, "blue")
    assert canvas_graph(sess.workflow, default_registry())["notes"][0]["h"] == 600
    assert sess.undo() and sess.workflow.notes[0].text == "Lab 1: <b>run</b> me"  # a note edit is undone like any
    assert sess.accept({**drawn(sess), "notes": []}) is Accepted.CHANGED
    assert sess.workflow.notes == ()
    assert sess.workflow.node_ids() == ["a", "b", "c"]  # notes are not nodes


def test_a_note_change_made_on_an_older_revision_is_replayed_onto_python_s_newer_graph() -> None:
    sess = session()
    sess.accept(with_notes(drawn(sess), {"id": "note_1", "text": "keep", "x": 0, "y": 0},
                           {"id": "note_2", "text": "drop", "x": 0, "y": 90}))
    canvas = drawn(sess)
    sess.push(with_param(sess, "c", duration_s=9))  # Python's change the canvas has not drawn
    report = {**canvas, "notes": [{**canvas["notes"][0], "text": "kept and edited"},
                                  {"id": "note_3", "text": "new", "x": 300, "y": 0, "w": 220}]}
    assert sess.accept(report) is Accepted.CHANGED
    assert [(n.id, n.text) for n in sess.workflow.notes] == [("note_1", "kept and edited"), ("note_3", "new")]
    assert sess.workflow.node("c").params["duration_s"] == 9  # Python's change is kept


def test_notes_from_the_browser_are_bounded_and_unique() -> None:
    sess = session()
    long = "x" * (NOTE_MAX_CHARS + 50)
    sess.accept(with_notes(drawn(sess), {"id": "n", "text": long, "x": 0, "y": 0, "w": 5000, "h": 10,
                                         "color": "<script>"},
                           {"id": "n", "text": "same id", "x": 0, "y": 0}))
    (note,) = sess.workflow.notes
    assert len(note.text) == NOTE_MAX_CHARS and (note.width, note.height, note.color) == (2000, 40, "yellow")
    without = {k: v for k, v in drawn(sess).items() if k != "notes"}  # a report that does not speak of notes
    sess.accept(move(without, "a", 999, 999))
    assert sess.workflow.notes == (note,)
    with pytest.raises(WorkflowFileError, match="two notes have the id 'n'"):
        workflow_from_data({**THREE, "notes": [{"id": "n"}, {"id": "n"}]})


def test_duplicate_copies_nodes_with_their_parameters_and_inner_wires_next_to_the_originals() -> None:
    sess = session()
    sess.push(with_param(sess, "a", duration_s=7))
    sess.accept(with_notes(drawn(sess), {"id": "note_1", "text": "why", "x": 0, "y": 300}))
    steps = len(sess.undo_stack)
    sess.duplicate(["a", "b", "ghost"], ["note_1"])
    wf = sess.workflow
    assert wf.node_ids() == ["a", "b", "c", "a_2", "b_2"] and sess.selected == ["a_2", "b_2"]
    assert wf.node("a_2").params == {"duration_s": 7} and wf.node("a_2").agent == "sim.task"
    assert [(e.source, e.target) for e in wf.edges] == [("a", "b"), ("a_2", "b_2")]  # only the wire inside the copy
    a, a2 = wf.node("a").position, wf.node("a_2").position
    assert (a2.x - a.x, a2.y - a.y) == (40, 40)
    assert [(n.id, n.text) for n in wf.notes] == [("note_1", "why"), ("note_2", "why")]
    assert sess.notice["text"] == "added copies of 2 nodes and 1 note"
    sess.duplicate(["a"])  # again: the next free spot, the next free id
    assert sess.workflow.node("a_3").position.x - a.x == 80
    assert len(sess.undo_stack) == steps + 2 and sess.undo() and sess.workflow.node("a_3") is None
    rev = sess.rev
    sess.duplicate(["ghost"])
    assert sess.rev == rev and sess.notice["text"].startswith("nothing to copy")  # told; the graph is unchanged
    assert sess.workflow.node_ids() == ["a", "b", "c", "a_2", "b_2"]


def test_outputs_are_stale_when_the_node_or_anything_before_it_changed() -> None:
    from ui.designer_run import changed_since_run

    ran = session().workflow  # a -> b, c alone
    sess = session()
    sess.accept(move(drawn(sess), "b", 500, 500))  # moved and relabelled: the same computation
    sess.push(replace_node(sess.workflow, sess.workflow.node("b").model_copy(update={"label": "renamed"})))
    assert not changed_since_run(ran, sess.workflow, "b")
    sess.push(with_param(sess, "a", duration_s=5))  # upstream of b, not of c
    assert changed_since_run(ran, sess.workflow, "b") and changed_since_run(ran, sess.workflow, "a")
    assert not changed_since_run(ran, sess.workflow, "c")
    rewired = ran.model_copy(update={"edges": (EdgeSpec(source="c", target="b"),)})
    assert changed_since_run(ran, rewired, "b") and not changed_since_run(ran, rewired, "a")


def test_paste_with_inputs_also_copies_the_wires_into_the_copies() -> None:
    sess = session()  # a -> b, c
    sess.duplicate(["b"], with_inputs=True)
    assert [(e.source, e.target) for e in sess.workflow.edges] == [("a", "b"), ("a", "b_2")]
    sess.duplicate(["b"])  # without: a copy with no wires in
    assert [(e.source, e.target) for e in sess.workflow.edges] == [("a", "b"), ("a", "b_2")]


def test_a_reopened_workflow_can_be_undone_through_its_saved_versions(tmp_path) -> None:
    from storage import Store
    from ui.session import undo_history

    with Store(f"sqlite:///{tmp_path / 'undo.db'}") as store:
        first = workflow_from_data(THREE)
        wid, _ = store.save_workflow(first)
        for seconds in (5, 6, 7):
            node = first.node("a").model_copy(update={"params": {"duration_s": seconds}})
            store.save_workflow(replace_node(first, node), workflow_id=wid)
        history = undo_history(store, wid)
        assert [w.node("a").params["duration_s"] for w in history] == [1, 5, 6]  # oldest first, not the latest
        assert [w.node("a").params["duration_s"] for w in undo_history(store, wid, limit=2)] == [5, 6]
        sess = DesignerSession(store.get_workflow(wid), workflow_id=wid)
        sess.undo_stack = history
        assert sess.undo() and sess.workflow.node("a").params["duration_s"] == 6


def test_a_copy_pastes_into_another_workflow_keeping_free_ids() -> None:
    from ui.graphmodel import copy_of, paste

    clip = copy_of(session().workflow, ["a", "b"])  # a -> b
    other = workflow_from_data({"schema_version": 1, "name": "other",
                                "nodes": [{"id": "a", "agent": "sim.task", "params": {"duration_s": 9}}]})
    merged, copies = paste(other, clip)
    assert copies == ["a_2", "b"]  # "a" is taken there, "b" is free
    assert [(e.source, e.target) for e in merged.edges] == [("a_2", "b")]
    assert merged.node("a_2").params == {"duration_s": 1} and merged.node("a").params == {"duration_s": 9}
    only_b = copy_of(session().workflow, ["b"])
    assert [(e.source, e.target) for e in paste(other, only_b, with_inputs=True)[0].edges] == [("a", "b")]
    assert paste(other, only_b)[0].edges == ()  # without its inputs
    empty = workflow_from_data({"schema_version": 1, "name": "empty"})
    assert paste(empty, only_b, with_inputs=True)[0].edges == ()  # its input's source is not there


def test_relabel_sets_a_label_cut_to_its_limit_and_empty_means_the_id() -> None:
    sess = session()
    sess.relabel("a", "  Resize scans  ")
    assert sess.workflow.node("a").label == "Resize scans"
    sess.relabel("a", "x" * 900)
    assert len(sess.workflow.node("a").label) == 500
    sess.relabel("a", "   ")
    assert sess.workflow.node("a").label is None
    rev = sess.rev
    sess.relabel("ghost", "nothing")  # an unknown node: nothing happens
    assert sess.rev == rev


def test_a_canvas_command_delivered_twice_is_handled_once() -> None:
    """Streamlit can hand one trigger to two overlapping reruns (seen as a paste that added its
    copies twice); each command's id is handled once, and distinct commands all pass."""
    import streamlit as st

    from ui.designer_page import KEEP_SEEN, SEEN_COMMANDS, first_delivery

    st.session_state.pop(SEEN_COMMANDS, None)
    paste = {"name": "paste", "ids": ["pre"], "rev": 3, "cid": "tab1:7"}
    assert first_delivery(paste) and not first_delivery(dict(paste))
    assert first_delivery({**paste, "cid": "tab1:8"})  # the same paste pressed again is a new command
    assert first_delivery({**paste, "cid": "tab2:7"})  # another canvas's counter
    assert first_delivery({"name": "undo"}) and first_delivery({"name": "undo"})  # no id: always handled
    for i in range(KEEP_SEEN + 5):
        first_delivery({"name": "copy", "cid": f"x:{i}"})
    assert len(st.session_state[SEEN_COMMANDS]) == KEEP_SEEN
