"""Edits the properties panels make to a node: replace it in the session's workflow (one undo step)
and save; switch its flags from what their toggles show (the breakpoint's toggle is drawn here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from engine.workflow import NodeSpec
from ui.editor import DesignerSession
from ui.graphmodel import replace_node

Saver = Callable[[DesignerSession], None]


def update_node(sess: DesignerSession, node: NodeSpec, save: Saver, **changes: Any) -> None:
    """``node`` with ``changes`` in the session's workflow, saved."""
    sess.push(replace_node(sess.workflow, node.model_copy(update=changes)))
    save(sess)


def set_flag(sess: DesignerSession, node_id: str, flag: str, key: str, save: Saver) -> None:
    """A node's ``disabled`` or ``bypass`` set to what its toggle (``key``) now shows (a widget
    callback). Set, never flipped: a toggle the browser re-creates during an interrupted rerun can
    report again without a click (seen under load: a node turned bypassed by itself when the
    selection changed)."""
    node = sess.workflow.node(node_id)
    value = bool(st.session_state.get(key))
    if node is not None and getattr(node, flag) != value:
        update_node(sess, node, save, **{flag: value})


def breakpoint_toggle(sess: DesignerSession, node: NodeSpec, save: Saver) -> None:
    """A node's breakpoint: runs pause before it starts (F9 on the canvas)."""
    key = f"breakpoint.{node.id}.{node.breakpoint}"
    st.toggle("Pause before it (breakpoint)", value=node.breakpoint, key=key, on_change=set_flag,
              args=(sess, node.id, "breakpoint", key, save),
              help="Runs pause when this node is ready to start (its inputs are there): look at what came before, "
                   "then Step starts it and Resume goes on (F9 on the canvas; `servicegrid run --break NODE`). "
                   "On a component's node: before the nodes inside that its inputs feed.")
