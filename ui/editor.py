"""The designer's editing session: the workflow being edited, Python's revision counter, selection
and undo/redo. Pure Python, kept in ``st.session_state``; the page decides when to save.

Protocol with the canvas: Python bumps ``rev`` whenever it changes the graph itself (panel edit,
undo, layout, opening a file); the canvas reports graphs stamped with the rev it holds, and a
report is accepted only when its rev equals the current one (older echoes are ignored).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from engine.workflow import Workflow
from ui.graphmodel import structure_key, with_layout, workflow_from_canvas

HISTORY_LIMIT = 200


class Accepted(StrEnum):
    IGNORED = "ignored"  # stale revision or malformed report
    SELECTION = "selection"  # only the selection changed
    CHANGED = "changed"  # the workflow changed (save it)


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
    dirty: bool = False  # changed since the last save

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
        self.rev += 1
        self.fit = fit
        self.dirty = True

    def accept(self, graph: dict[str, Any] | None) -> Accepted:
        """Take a graph the canvas reported, if it was drawn at the current revision."""
        if not isinstance(graph, dict) or graph.get("rev") != self.rev:
            return Accepted.IGNORED
        try:
            new = workflow_from_canvas(self.workflow, graph)
        except (KeyError, TypeError, ValueError):
            return Accepted.IGNORED
        selected = [str(s) for s in graph.get("selected") or [] if new.node(str(s)) is not None]
        same_selection = selected == self.selected
        self.selected = selected
        self.fit = False
        if structure_key(new) == structure_key(self.workflow):
            return Accepted.IGNORED if same_selection else Accepted.SELECTION
        self._remember()
        self.workflow = new
        self.dirty = True
        return Accepted.CHANGED

    def tell(self, text: str, kind: str = "info") -> None:
        """Show ``text`` as a toast on the canvas at the next draw."""
        count = int(self.notice["id"]) + 1 if self.notice else 1
        self.notice = {"id": count, "text": text, "kind": kind}

    def select(self, node_id: str | None) -> None:
        """Select one node (or none) from Python, e.g. a click on a finding."""
        self.selected = [node_id] if node_id and self.workflow.node(node_id) else []
        self.rev += 1
        self.fit = False

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

    def layout(self) -> None:
        self.push(with_layout(self.workflow), fit=True)

    def _remember(self) -> None:
        self.undo_stack.append(self.workflow)
        del self.undo_stack[:-HISTORY_LIMIT]
        self.redo_stack.clear()
