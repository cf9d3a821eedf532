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
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from engine.components import component_name
from engine.errors import WorkflowFileError
from engine.grouping import group, regroup, ungroup
from engine.inside import (
    INPUTS,
    OUTPUTS,
    close_inside,
    definition_of,
    is_boundary,
    normalized,
    open_inside,
    rename_port,
)
from engine.registry import Registry
from engine.workflow import ComponentSpec, NodeSpec, Workflow
from ui.designer_rebase import Rebased, rebase
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


@dataclass(frozen=True)
class Scope:
    """A component open for editing in place: the session's workflow is then its inside
    (``engine.inside``), and this is what it came from."""

    name: str  # the component
    instance: str  # the node it was opened from (selected again when it closes)
    outer: Workflow  # the workflow when it was opened
    undo: tuple[Workflow, ...]  # the workflow's undo and redo steps, back when it closes
    redo: tuple[Workflow, ...]
    selected: tuple[str, ...] = ()
    trail: tuple[str, ...] = ()  # the components opened on the way here, outermost first (the path back)


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
    # (workflow, selection, open component) as the canvas last agreed with Python at each recent revision
    revisions: dict[int, tuple[Workflow, tuple[str, ...], str | None]] = field(default_factory=dict, repr=False)
    # component -> (the nodes ungrouping one of its instances put back, that instance, the component
    # as it was): grouping them again updates the component, or makes it again (``group``)
    reopened: dict[str, tuple[tuple[str, ...], NodeSpec, ComponentSpec]] = field(default_factory=dict, repr=False)
    scope: Scope | None = None  # the component open for editing in place (``workflow`` is its inside)
    _document: tuple[Workflow, Workflow] | None = field(default=None, repr=False)  # (view, what it closes to)

    def __post_init__(self) -> None:
        self._record()

    @property
    def document(self) -> Workflow:
        """The workflow as saved and run: ``workflow`` itself, or, with a component open, the
        workflow it came from with that component as its inside now draws it."""
        if self.scope is None:
            return self.workflow
        if self._document is None or self._document[0] is not self.workflow:
            self._document = (self.workflow, close_inside(self.scope.outer, self.workflow).workflow)
        return self._document[1]

    @property
    def scope_name(self) -> str | None:
        return self.scope.name if self.scope is not None else None

    def enter(self, node_id: str) -> bool:
        """Open the component of node ``node_id`` for editing in place. One inside the open one:
        that one closes first (saved, one undo step) and the path back goes through it. Its nodes
        are drawn with its Inputs and Outputs; undo steps through the edits made inside; ``leave``
        goes back."""
        node = self.workflow.node(node_id)
        name = component_name(node) if node is not None else None
        if name is None or self.workflow.component(name) is None:
            self.tell("select a component's node to open it" if name is None else f"there is no component {name!r}")
            return False
        trail: tuple[str, ...] = ()
        if self.scope is not None:  # a component inside the open one: that one closes, this one opens
            node_id, trail = self.scope.instance, (*self.scope.trail, self.scope.name)  # the workflow's node
            self.leave(quiet=True)
            if self.scope is not None:  # it could not close (said why)
                return False
        self._open(name, node_id, trail)
        return True

    def back(self, depth: int) -> None:
        """Go back along the path above the canvas: 0 to the workflow, 1 to the first component
        opened on the way here, and so on."""
        scope = self.scope
        if scope is None:
            return
        if depth <= 0 or depth > len(scope.trail):
            self.leave()
            return
        self.leave(quiet=True)
        if self.scope is not None:  # it could not close (said why)
            return
        name = scope.trail[depth - 1]
        if self.workflow.component(name) is None:
            self.tell(f"component {name!r} is gone: back on the workflow")
            return
        self._open(name, scope.instance, scope.trail[:depth - 1])

    def _open(self, name: str, node_id: str, trail: tuple[str, ...]) -> None:
        outer = self.workflow
        self.scope = Scope(name, node_id, outer, tuple(self.undo_stack), tuple(self.redo_stack), tuple(self.selected),
                           trail)
        self.undo_stack, self.redo_stack = [], []
        self.workflow, self.selected, self.fit = open_inside(outer, name), [], True
        self._bump()
        self.tell(f"inside component {name!r}: what you change here, every node using it runs. Wire a port to "
                  "Inputs + or Outputs + to add one; the path above the canvas goes back")

    def leave(self, quiet: bool = False) -> None:
        """Close the open component: the workflow again, with the component as edited (one undo
        step), its instances' wires following its ports."""
        scope = self.scope
        if scope is None:
            return
        try:
            closed = close_inside(scope.outer, self.workflow)
        except WorkflowFileError as exc:  # every edit inside was checked: a safety net, it stays open
            self.tell(f"component {scope.name!r} cannot be closed: {exc}", "error")
            return
        changed = structure_key(closed.workflow) != structure_key(scope.outer)
        self.scope, self._document = None, None
        self.undo_stack = [*scope.undo, scope.outer] if changed else list(scope.undo)
        del self.undo_stack[:-HISTORY_LIMIT]
        self.redo_stack = [] if changed else list(scope.redo)
        self.workflow, self.fit = closed.workflow, True
        self.selected = [scope.instance] if closed.workflow.node(scope.instance) is not None else []
        self._bump()
        if quiet and not (closed.renamed or closed.dropped):  # on the way to another component
            return
        told = [f"component {scope.name!r} saved" if quiet else
                f"back on the workflow: component {scope.name!r} " + ("updated" if changed else "unchanged")]
        if closed.renamed:
            told.append("renamed " + ", ".join(f"{k} to {v!r}" for k, v in closed.renamed.items()))
        if closed.dropped:
            told.append(f"removed {len(closed.dropped)} wire{'s' if len(closed.dropped) != 1 else ''} to ports it no "
                        f"longer has ({', '.join(closed.dropped[:3])}{', …' if len(closed.dropped) > 3 else ''})")
        self.tell("; ".join(told), "info")

    def editable(self, ids: list[str]) -> list[str]:
        """``ids`` without the open component's Inputs and Outputs (they are not copied, grouped,
        disabled or renamed)."""
        return [i for i in ids if not is_boundary(i)] if self.scope is not None else ids

    def rename_port(self, side: str, old: str, new: str) -> None:
        """Rename an input (``side`` "inputs") or output of the open component; its instances'
        wires follow."""
        try:
            view = rename_port(self.workflow, side, old, new)
        except WorkflowFileError as exc:
            self.tell(f"{exc}" + (f": {exc.hint}" if exc.hint else ""), "error")
            return
        self.push(view)

    def push(self, workflow: Workflow, *, record: bool = True, fit: bool = False) -> None:
        """A Python-side change: the canvas adopts it because the revision goes up.

        An identical workflow changes nothing (no new revision): a widget callback that re-sends
        the value it shows must not make the canvas's report in the same run look stale.
        """
        if structure_key(workflow) == structure_key(self.workflow):
            return
        if self.scope is not None:  # inside a component: only what the component can keep
            try:
                definition_of(workflow)
            except WorkflowFileError as exc:
                self.tell(f"{exc}" + (f": {exc.hint}" if exc.hint else ""), "error")
                return
            workflow = normalized(workflow)
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
        known = (self.workflow, tuple(self.selected), self.scope_name) if current else self.revisions.get(base_rev)
        if known is None or base_rev > self.rev:
            self._refuse([f"it was made on revision {base_rev} of a graph that is no longer open"])
            return Accepted.CONFLICT
        base, base_selected, base_scope = known
        if base_scope != self.scope_name:
            where = f"inside component {base_scope!r}" if base_scope else "on the workflow"
            self._refuse([f"it was made {where}, which is no longer open"])
            return Accepted.CONFLICT
        try:
            result = rebase(base, workflow_from_canvas(base, graph), self.workflow)
        except (KeyError, TypeError, ValueError):
            return Accepted.IGNORED
        if result.workflow is not None and self.scope is not None:
            result, current = self._inside_rules(result, current)
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

    def _inside_rules(self, result: Rebased, current: bool) -> tuple[Rebased, bool]:
        """A canvas change inside a component, as the component can keep it: wires to a ``+`` get
        their new port's name (then the canvas must adopt Python's graph: no longer ``current``);
        its Inputs and Outputs and at least one node stay."""
        view = result.workflow
        assert view is not None
        if any(view.node(b) is None for b in (INPUTS, OUTPUTS)):
            return Rebased(None, ["a component's Inputs and Outputs cannot be deleted"], result.actions), current
        if view.notes:
            return Rebased(None, ["notes belong to the workflow, not inside a component"], result.actions), current
        try:
            definition_of(view)
        except WorkflowFileError as exc:
            return Rebased(None, [f"{exc}" + (f" ({exc.hint})" if exc.hint else "")], result.actions), current
        named = normalized(view)
        return (Rebased(named, [], result.actions), False) if named is not view else (result, current)

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
        self.revisions[self.rev] = (self.workflow, tuple(self.selected), self.scope_name)
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
        self.paste(copy_of(self.workflow, self.editable(node_ids), note_ids or ()), with_inputs,
                   empty="nothing to copy: select nodes or notes first")

    def paste(self, clip: Clip, with_inputs: bool = False,
              empty: str = "nothing to paste: select nodes or notes and press Ctrl+C first") -> None:
        """What ``clip`` holds (copied from this workflow or another) as new nodes and notes,
        selected; one undo step. Inside a component, notes are not pasted (they belong to the workflow)."""
        if self.scope is not None:
            clip = replace(clip, notes=())
        workflow, copies = paste(self.workflow, clip, with_inputs)
        if workflow is self.workflow:
            self.tell(empty)
            return
        notes = len(workflow.notes) - len(self.workflow.notes)
        self.selected = copies
        self.push(workflow)
        self.tell(f"added copies of {describe_clip(len(copies), notes)}")

    def toggle(self, ids: list[str], flag: str) -> None:
        """Disable (``flag`` "disabled", Ctrl+M), bypass ("bypass", Ctrl+B) or put a breakpoint on
        ("breakpoint", F9) the nodes ``ids``, or switch that off again when all of them have it."""
        ids = self.editable(ids)
        workflow, on = toggle_flag(self.workflow, ids, flag)
        if on is None:
            verb = {"disabled": "disable", "bypass": "bypass"}.get(flag, "put a breakpoint on")
            self.tell(f"select the nodes to {verb} first")
            return
        self.push(workflow)
        n = len([i for i in ids if workflow.node(i) is not None])
        what = f"{n} node{'s' if n != 1 else ''}"
        if flag == "disabled":
            self.tell(f"disabled {what}: they and the nodes after them do not run (Ctrl+M enables them)" if on
                      else f"enabled {what}")
        elif flag == "breakpoint":
            self.tell(f"breakpoint on {what}: runs pause before each starts; Step starts it, Resume goes on "
                      "(F9 again removes it)" if on else f"no breakpoint on {what}")
        else:
            self.tell(f"bypassed {what}: runs pass the input of each straight on (Ctrl+B again runs them)" if on
                      else f"{what} no longer bypassed")

    def group(self, ids: list[str], registry: Registry) -> None:
        """Make the nodes ``ids`` a new component, drawn as one node where they were (Ctrl+G); or,
        when they are the nodes of a component ungrouped here (and any added since), that
        component's new definition, which its other nodes then run too."""
        ids = self.editable(ids)
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
        if node is not None and self.editable([node_id]):
            self.push(replace_node(self.workflow, node.model_copy(update={"label": label.strip()[:500] or None})))

    def layout(self) -> None:
        self.push(with_layout(self.workflow), fit=True)

    def _remember(self) -> None:
        """Put the current workflow on the undo stack (before a change)."""
        self.undo_stack.append(self.workflow)
        del self.undo_stack[:-HISTORY_LIMIT]
        self.redo_stack.clear()
