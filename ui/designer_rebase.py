"""Rebasing a canvas report drawn at an older revision onto the session's current workflow.

A three-way merge: the user's action is the difference between the workflow the canvas was drawn
from (``base``) and what it reported (``theirs``); it is replayed onto Python's ``ours``.
Pure Python; the canvas can only add, move and delete nodes, add and delete edges, and add,
edit, move and delete notes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.graphs import find_cycle, format_cycle
from engine.workflow import MAX_NOTES, EdgeSpec, NodeSpec, NoteSpec, Workflow


@dataclass(frozen=True)
class Rebased:
    """The merge result: ``workflow`` is None when the action conflicts (``conflicts`` says why)."""

    workflow: Workflow | None
    conflicts: list[str] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)  # what the user did, for messages


def same_edge(a: EdgeSpec, b: EdgeSpec) -> bool:
    """Same wire; an omitted port (None, resolved only when drawn) matches any port name."""
    return (a.source == b.source and a.target == b.target
            and (a.source_port is None or b.source_port is None or a.source_port == b.source_port)
            and (a.target_port is None or b.target_port is None or a.target_port == b.target_port))


def _has(edges: dict[tuple[str, str], list[EdgeSpec]], edge: EdgeSpec) -> bool:
    return any(same_edge(edge, e) for e in edges.get((edge.source, edge.target), ()))


def _by_pair(edges: tuple[EdgeSpec, ...] | list[EdgeSpec]) -> dict[tuple[str, str], list[EdgeSpec]]:
    """Edges indexed by (source, target): lookups stay linear on large graphs."""
    index: dict[tuple[str, str], list[EdgeSpec]] = {}
    for edge in edges:
        index.setdefault((edge.source, edge.target), []).append(edge)
    return index


def _describe(edge: EdgeSpec) -> str:
    return f"{edge.source}.{edge.source_port or 'out'} → {edge.target}.{edge.target_port or 'in'}"


def rebase(base: Workflow, theirs: Workflow, ours: Workflow) -> Rebased:
    """Replay the canvas's change ``base → theirs`` onto ``ours``; refuse it when it conflicts."""
    base_nodes = {n.id: n for n in base.nodes}
    their_nodes = {n.id: n for n in theirs.nodes}
    conflicts: list[str] = []
    actions: list[str] = []
    deleted = {i for i in base_nodes if i not in their_nodes}
    nodes: dict[str, NodeSpec] = {n.id: n for n in ours.nodes if n.id not in deleted}
    actions += [f"deleted {i}" for i in base_nodes if i in deleted]
    for node_id, node in their_nodes.items():
        before, now = base_nodes.get(node_id), nodes.get(node_id)
        if before is None or before.agent != node.agent:  # added on the canvas
            if now is None:
                nodes[node_id] = node
                actions.append(f"added {node_id}")
            elif now.agent != node.agent:
                conflicts.append(f"a node named {node_id} ({now.agent}) exists already")
            elif now.position != node.position:
                nodes[node_id] = now.model_copy(update={"position": node.position})
        elif before.position != node.position:  # moved on the canvas
            if now is None:
                conflicts.append(f"{node_id} was moved but no longer exists")
            else:
                nodes[node_id] = now.model_copy(update={"position": node.position})
                actions.append(f"moved {node_id}")
    base_edges, their_edges = _by_pair(base.edges), _by_pair(theirs.edges)
    removed = _by_pair([e for e in base.edges if not _has(their_edges, e)])
    added = [e for e in theirs.edges if not _has(base_edges, e)]
    edges = [e for e in ours.edges if e.source in nodes and e.target in nodes and not _has(removed, e)]
    actions += [f"disconnected {_describe(e)}" for pair in removed.values() for e in pair
                if e.source in nodes and e.target in nodes]
    present = _by_pair(edges)
    for edge in added:
        if edge.source not in nodes or edge.target not in nodes:
            missing = edge.source if edge.source not in nodes else edge.target
            conflicts.append(f"{_describe(edge)} needs {missing}, which no longer exists")
        elif not _has(present, edge):
            edges.append(edge)
            present.setdefault((edge.source, edge.target), []).append(edge)
            actions.append(f"connected {_describe(edge)}")
    kept = [n.id for n in ours.nodes if n.id in nodes]
    known = set(kept)
    order = kept + [i for i in their_nodes if i in nodes and i not in known]
    if not conflicts:
        cycle = find_cycle(order, [(e.source, e.target) for e in edges])
        if cycle:
            conflicts.append(f"the result would have a cycle ({format_cycle(cycle)})")
    if conflicts:
        return Rebased(None, conflicts, actions)
    notes, note_actions = _rebase_notes(base, theirs, ours)
    merged = ours.model_copy(update={"nodes": tuple(nodes[i] for i in order), "edges": tuple(edges),
                                     "notes": notes})
    return Rebased(merged, [], actions + note_actions)


def _rebase_notes(base: Workflow, theirs: Workflow, ours: Workflow) -> tuple[tuple[NoteSpec, ...], list[str]]:
    """The canvas's note changes (added, edited, moved, deleted) replayed onto ``ours``'s notes.
    Notes never conflict: a note edited on both sides takes the canvas's version."""
    base_notes, their_notes = {n.id: n for n in base.notes}, {n.id: n for n in theirs.notes}
    notes = {n.id: n for n in ours.notes if n.id not in base_notes or n.id in their_notes}
    actions = [f"deleted note {i}" for i in base_notes if i not in their_notes]
    for note_id, note in their_notes.items():
        before = base_notes.get(note_id)
        if before is None:
            notes[note_id] = note
            actions.append(f"added note {note_id}")
        elif before != note and note_id in notes:
            notes[note_id] = note
            actions.append(f"edited note {note_id}")
    return tuple(notes.values())[:MAX_NOTES], actions
