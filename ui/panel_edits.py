"""Edits the properties panels make to a node: replace it in the session's workflow (one undo step)
and save; switch its flags from what their toggles show (the breakpoint's toggle is drawn here)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import streamlit as st

from engine import breaks
from engine.workflow import BREAK_OPS, BreakCondition, NodeSpec
from ui.editor import DesignerSession
from ui.forms import sync_widget
from ui.graphmodel import flag_update, replace_node
from ui.render import code_md, escape_md

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
        update_node(sess, node, save, **flag_update(flag, value))


Arriving = dict[str, tuple[tuple[str, ...], dict[str, tuple[str, ...]]]]  # port -> (columns, names a column holds)


def breakpoint_toggle(sess: DesignerSession, node: NodeSpec, save: Saver, arriving: Arriving | None = None) -> None:
    """A node's breakpoint: runs pause before it starts (F9 on the canvas); with it, its condition
    (``engine.breaks``): pause only when some row of an input meets it. ``arriving``: the planned
    columns of each of its inputs (and the names a column is known to hold), where known: what
    the condition can test, offered as pickers."""
    key = f"breakpoint.{node.id}.{node.breakpoint}"
    st.toggle("Pause before it (breakpoint)", value=node.breakpoint, key=key, on_change=set_flag,
              args=(sess, node.id, "breakpoint", key, save),
              help="Runs pause when this node is ready to start (its inputs are there): look at what came before, "
                   "then Step starts it and Resume goes on (F9 on the canvas; `servicegrid run --break NODE`). "
                   "On a component's node: before the nodes inside that its inputs feed.")
    if node.breakpoint:
        _condition_input(sess, node, save, arriving or {})
    else:  # a breakpoint taken away takes a refused condition's text with it too
        st.session_state.pop(f"break_when.{node.id}.refused", None)


def _condition_input(sess: DesignerSession, node: NodeSpec, save: Saver, arriving: Arriving) -> None:
    key = f"break_when.{node.id}"
    refused = st.session_state.get(f"{key}.refused")
    if refused is None:  # what is saved; a refused text stays in the box until it is fixed
        sync_widget(key, node.break_when.describe() if node.break_when is not None else "")
    st.text_input("Only when (condition)", key=key, on_change=_set_condition, args=(sess, node.id, key, save),
                  placeholder="always; or e.g. confidence < 0.6",
                  help="Pause only when some row of an input meets this: `[PORT:] FIELD OP VALUE`, OP one of "
                       "== != < <= > >= contains in (a comma-separated list), e.g. `confidence < 0.6`, "
                       "`intents: predicted == refund`, `priority in high, urgent`. Name the input when the "
                       "node has several. Empty: always pause. Nothing in it runs as code.")
    if refused:
        st.error(escape_md(refused), icon=":material/error:")
    for port, (names, _) in arriving.items():
        st.caption(f"Input {code_md(port)} has the columns " + ", ".join(code_md(c) for c in ("id", *names)[:16])
                   + (" …" if len(names) > 15 else ""))
    if arriving:
        with st.expander("Or pick it from what arrives", expanded=False):
            _condition_pickers(sess, node, save, arriving)


def _condition_pickers(sess: DesignerSession, node: NodeSpec, save: Saver, arriving: Arriving) -> None:
    """The condition built from pickers instead of typed: the input, one of its columns, an
    operator, and a value (one of the names the column is known to hold, where it is known)."""
    key, ports = f"break_pick.{node.id}", list(arriving)
    port = st.selectbox("Input", ports, key=f"{key}.port") if len(ports) > 1 else ports[0]  # the panel is narrow: stacked
    columns, names = arriving[port]
    field = st.selectbox("Column", ["id", *(c for c in columns if c != "id")], key=f"{key}.field.{port}")
    left, right = st.columns([1, 2])
    op = left.selectbox("Operator", BREAK_OPS, key=f"{key}.op")
    known = list(names.get(field, ()))
    value: Any
    if known and op in ("==", "!="):
        value = right.selectbox("Value", known, key=f"{key}.one.{port}.{field}")
    elif known and op == "in":
        value = right.multiselect("Values", known, key=f"{key}.many.{port}.{field}")
    else:
        value = _number_or_text(right.text_input("Value", key=f"{key}.text", placeholder="e.g. 0.6"))
    ready = value not in ("", [], None)
    condition = BreakCondition(port=port if len(ports) > 1 else None, field=field, op=op, value=value) if ready else None
    st.button(f"Pause only when {condition.describe()}" if condition is not None else "Pause only when …",
              key=f"{key}.use", disabled=condition is None, on_click=_use_condition, args=(sess, node.id, condition, save),
              icon=":material/filter_alt:", help="Sets this as the breakpoint's condition (the box above shows it)")


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text.strip()


def _use_condition(sess: DesignerSession, node_id: str, condition: BreakCondition | None, save: Saver) -> None:
    """The picked condition saved on the node (a widget callback)."""
    node = sess.workflow.node(node_id)
    st.session_state.pop(f"break_when.{node_id}.refused", None)
    if node is not None and condition is not None and condition != node.break_when:
        update_node(sess, node, save, break_when=condition)


def _set_condition(sess: DesignerSession, node_id: str, key: str, save: Saver) -> None:
    """The condition typed into ``key`` saved on the node (empty: none); text that is not a
    condition is refused with the form it must take, and stays in the box."""
    node = sess.workflow.node(node_id)
    text = str(st.session_state.get(key) or "").strip()
    if node is None:
        return
    try:
        condition = breaks.parse(text) if text else None
    except ValueError as exc:
        st.session_state[f"{key}.refused"] = str(exc)
        return
    st.session_state.pop(f"{key}.refused", None)
    if condition != node.break_when:
        update_node(sess, node, save, break_when=condition)
