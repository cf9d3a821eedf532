"""The designer's editing session: the workflow being edited, Python's revision counter, selection
and undo/redo. Pure Python, kept in ``st.session_state``; the page decides when to save.

Protocol with the canvas (docs/designer.md, "Revisions"): Python bumps ``rev`` whenever it changes
the graph itself (panel edit, undo, layout, opening a file); the canvas stamps each report with the
rev its graph was based on. A report at the current rev is taken as is; a report based on an older
rev is rebased (the user's action replayed onto the current workflow, ``ui.designer_rebase``) and
Python pushes the result; an action that cannot be replayed is refused with a message, never dropped
silently.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.components import component_name
from engine.errors import WorkflowFileError
from engine.grouping import group, regroup, ungroup
from engine.registry import Registry
from engine.workflow import ComponentSpec, NodeSpec, Workflow
from ui.designer_rebase import rebase
from ui.graphmodel import (
    Clip,
    copy_of,
    describe_clip,
    paste,
    replace_node,
    structure_key,
    toggle_flag,
    with_layout,
    workflow_from_canvas,
)

HISTORY_LIMIT = 200
REVISIONS_KEPT = 64  # how far back a canvas report can be rebased


class Accepted(StrEnum):
    IGNORED = "ignored"  # nothing new (an echo) or a malformed report
    SELECTION = "selection"  # only the selection changed
    CHANGED = "changed"  # the workflow changed (save it)
    CONFLICT = "conflict"  # an action on an older revision that cannot be replayed: refused, user told


@dataclass
class DesignerSession:
    workflow: Workflow
    workflow_id: str | None = None
    rev: int = 1
    selected: list[str] = field(default_factory=list)
    undo_stack: list[Workflow] = field(default_factory=list)
    redo_stack: list[Workflow] = field(default_factory=list)
    fit: bool = True
    notice: dict[str, Any] | None = None  # {id, text, kind}: a toast the canvas shows once
    notices: int = 0  # toasts told so far
    dirty: bool = False  # changed since the last save
    # names this editing session for the canvas (data.doc): a remounted canvas takes up its last
    # unacknowledged report only for the same session (ui/canvas/canvas.js, "resume")
    token: str = field(default_factory=lambda: secrets.token_hex(8))
    # (workflow, selection) as the canvas last agreed with Python at each recent revision
    revisions: dict[int, tuple[Workflow, tuple[str, ...]]] = field(default_factory=dict, repr=False)
    # component -> (the nodes ungrouping one of its instances put back, that instance, the component
    # as it was): grouping them again updates the component, or makes it again (``group``)
    reopened: dict[str, tuple[tuple[str, ...], NodeSpec, ComponentSpec]] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._record()

    def push(self, workflow: Workflow, *, record: bool = True, fit: bool = False) -> None:
        """A Python-side change: the canvas adopts it because the revision goes up.

        An identical workflow changes nothing (no new revision): a widget callback that re-sends
        the value it shows must not make the canvas's report in the same run look stale.
        """
        if structure_key(workflow) == structure_key(self.workflow):
            return
        if record:
            self._remember()
        self.workflow = workflow
        self.selected = [s for s in self.selected if workflow.node(s) is not None]
        self.fit = fit
        self.dirty = True
        self._bump()

    def accept(self, graph: dict[str, Any] | None) -> Accepted:
        """Take a graph the canvas reported; ``graph["rev"]`` is the revision it was based on.

        The user's action (the difference between that revision's graph and the report) is
        replayed onto the current workflow. At the current revision that is the report itself;
        at an older one Python's later changes are kept and the merge is pushed back (new rev).
        """
        base_rev = graph.get("rev") if isinstance(graph, dict) else None
        if not isinstance(graph, dict) or not isinstance(base_rev, int) or isinstance(base_rev, bool):
            return Accepted.IGNORED
        current = base_rev == self.rev
        known = (self.workflow, tuple(self.selected)) if current else self.revisions.get(base_rev)
        if known is None or base_rev > self.rev:
            self._refuse([f"it was made on revision {base_rev} of a graph that is no longer open"])
            return Accepted.CONFLICT
        base, base_selected = known
        try:
            result = rebase(base, workflow_from_canvas(base, graph), self.workflow)
        except (KeyError, TypeError, ValueError):
            return Accepted.IGNORED
        if result.workflow is None:
            self._refuse(result.conflicts, result.actions)
            return Accepted.CONFLICT
        selected = [str(s) for s in graph.get("selected") or [] if result.workflow.node(str(s)) is not None]
        changed = structure_key(result.workflow) != structure_key(self.workflow)
        if not changed and tuple(selected) == base_selected:
            return Accepted.IGNORED  # an echo of what Python already holds
        self.selected = selected
        self.fit = False
        if changed:
            self._remember()
            self.workflow = result.workflow
            self.dirty = True
        if current:
            self._record()
        else:
            self._bump()  # the canvas may hold a graph without Python's later changes: it adopts the merge
        return Accepted.CHANGED if changed else Accepted.SELECTION

    def _refuse(self, conflicts: list[str], actions: list[str] | None = None) -> None:
        what = f" ({', '.join(actions[:3])}{', …' if len(actions) > 3 else ''})" if actions else ""
        self.tell(f"Your last change on the canvas{what} was not applied: {'; '.join(conflicts)}. "
                  "The canvas now shows the current graph.", "error")
        self.fit = False
        self._bump()  # re-push Python's state so the canvas drops its refused change

    def _bump(self) -> None:
        self.rev += 1
        self._record()

    def _record(self) -> None:
        self.revisions[self.rev] = (self.workflow, tuple(self.selected))
        for old in [r for r in self.revisions if r <= self.rev - REVISIONS_KEPT]:
            del self.revisions[old]

    def tell(self, text: str, kind: str = "info") -> None:
        """Show ``text`` as a toast on the canvas at the next draw."""
        self.notices += 1  # with the session's token: another session's toast of the same count still shows
        self.notice = {"id": f"{self.token}:{self.notices}", "text": text, "kind": kind}

    def select(self, node_id: str | None) -> None:
        """Select one node (or none) from Python, e.g. a click on a finding."""
        self.selected = [node_id] if node_id and self.workflow.node(node_id) else []
        self.fit = False
        self._bump()

    def undo(self) -> bool:
        if not self.undo_stack:
            return False
        self.redo_stack.append(self.workflow)
        self.push(self.undo_stack.pop(), record=False)
        return True

    def redo(self) -> bool:
        if not self.redo_stack:
            return False
        self.undo_stack.append(self.workflow)
        self.push(self.redo_stack.pop(), record=False)
        return True

    def duplicate(self, node_ids: list[str], note_ids: list[str] | None = None, with_inputs: bool = False) -> None:
        """Copies of nodes (with the wires between them, and with ``with_inputs`` the wires into
        them) and notes, next to them, selected; one undo step."""
        self.paste(copy_of(self.workflow, node_ids, note_ids or ()), with_inputs,
                   empty="nothing to copy: select nodes or notes first")

    def paste(self, clip: Clip, with_inputs: bool = False,
              empty: str = "nothing to paste: select nodes or notes and press Ctrl+C first") -> None:
        """What ``clip`` holds (copied from this workflow or another) as new nodes and notes,
        selected; one undo step."""
        workflow, copies = paste(self.workflow, clip, with_inputs)
        if workflow is self.workflow:
            self.tell(empty)
            return
        notes = len(workflow.notes) - len(self.workflow.notes)
        self.selected = copies
        self.push(workflow)
        self.tell(f"added copies of {describe_clip(len(copies), notes)}")

    def toggle(self, ids: list[str], flag: str) -> None:
        """Disable (``flag`` "disabled", Ctrl+M) or bypass ("bypass", Ctrl+B) the nodes ``ids``, or
        switch that off again when all of them have it."""
        workflow, on = toggle_flag(self.workflow, ids, flag)
        if on is None:
            self.tell(f"select the nodes to {'disable' if flag == 'disabled' else 'bypass'} first")
            return
        self.push(workflow)
        n = len([i for i in ids if workflow.node(i) is not None])
        what = f"{n} node{'s' if n != 1 else ''}"
        if flag == "disabled":
            self.tell(f"disabled {what}: they and the nodes after them do not run (Ctrl+M enables them)" if on
                      else f"enabled {what}")
        else:
            self.tell(f"bypassed {what}: runs pass the input of each straight on (Ctrl+B again runs them)" if on
                      else f"{what} no longer bypassed")

    def group(self, ids: list[str], registry: Registry) -> None:
        """Make the nodes ``ids`` a new component, drawn as one node where they were (Ctrl+G); or,
        when they are the nodes of a component ungrouped here (and any added since), that
        component's new definition, which its other nodes then run too."""
        back = self._reopened_by(ids)
        try:
            if back is not None:  # its name again; its definition updated where other nodes still use it
                put, node, definition = back
                workflow, instance = regroup(self.workflow, ids, registry, node, definition, put)
            else:
                workflow, instance = group(self.workflow, ids, registry)
        except WorkflowFileError as exc:
            self.tell(f"{exc}" + (f": {exc.hint}" if exc.hint else ""), "error" if ids else "info")
            return
        name = component_name(workflow.node(instance))  # type: ignore[arg-type]
        self.selected = [instance]
        self.push(workflow)
        n = len([i for i in ids if self.undo_stack[-1].node(i) is not None])
        if back is not None:
            self.reopened.pop(back[2].name, None)
            others = sum(component_name(x) == name for x in workflow.nodes) - 1
            self.tell(f"updated component {name!r} from its {n} nodes" + (
                ": its other node runs the change too" if others == 1 else
                f": its other {others} nodes run the change too" if others else ""))
            return
        self.tell(f"grouped {n} node{'s' if n != 1 else ''} into component {name!r}: the palette offers it "
                  "again (section components); Ctrl+Shift+G ungroups it")

    def _reopened_by(self, ids: list[str]) -> tuple[tuple[str, ...], NodeSpec, ComponentSpec] | None:
        """What ungrouping put back (its nodes, the instance, the component) when ``ids`` hold
        every one of those nodes still here (they may hold nodes added since)."""
        for put, instance, definition in self.reopened.values():
            here = [i for i in put if self.workflow.node(i) is not None]
            if here and set(here) <= set(ids):
                return put, instance, definition
        return None

    def ungroup(self, ids: list[str]) -> None:
        """Put the nodes of the selected component instances back in their place (Ctrl+Shift+G)."""
        workflow, put, opened = self.workflow, [], []
        for node_id in ids:
            node = workflow.node(node_id)
            name = component_name(node) if node is not None else None
            definition = workflow.component(name) if name is not None else None
            if node is not None and definition is not None:
                workflow, back = ungroup(workflow, node_id)
                put += back
                opened.append((back, node, definition))
        if workflow is self.workflow:
            self.tell("select a component's node to ungroup it")
            return
        self.selected = put
        self.push(workflow)
        what = f"ungrouped: {len(put)} node{'s' if len(put) != 1 else ''} back in place"
        if len(opened) != 1:
            self.tell(what)
            return
        back, node, definition = opened[0]
        name = definition.name
        self.reopened[name] = (tuple(back), node, definition)
        if workflow.component(name) is not None:  # other nodes still use it
            self.tell(f"{what}. Change them, then Ctrl+G with them selected updates component {name!r} for "
                      "its other nodes too")
        else:
            self.tell(f"{what}; Ctrl+G with them selected groups them again as {name!r}")

    def relabel(self, node_id: str, label: str) -> None:
        """A node's label as renamed on the canvas (empty: its id again; at most 500 characters)."""
        node = self.workflow.node(node_id)
        if node is not None:
            self.push(replace_node(self.workflow, node.model_copy(update={"label": label.strip()[:500] or None})))

    def layout(self) -> None:
        self.push(with_layout(self.workflow), fit=True)

    def _remember(self) -> None:
        """Put the current workflow on the undo stack (before a change)."""
        self.undo_stack.append(self.workflow)
        del self.undo_stack[:-HISTORY_LIMIT]
        self.redo_stack.clear()
