"""What waits at a node a paused run holds (at its breakpoint, or ready when Pause was pressed):
the inputs it will start with, as a debugger shows the variables at a breakpoint; with a
breakpoint condition, the rows that met it first. Shown under the designer's canvas and on the
Run page."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine import breaks
from ui.monitor.outputs import render_outputs
from ui.render import code_md, escape_md


def waiting_inputs(manager: Any, run_id: str, node_id: str, key: str) -> None:
    """The inputs ``node_id`` of paused run ``run_id`` will start with (``manager``: the run
    manager; ``key`` prefixes the widgets' keys)."""
    try:
        inputs, ran, snap = manager.inputs(run_id, node_id), manager.workflow(run_id), manager.snapshot(run_id)
    except KeyError:  # the run left the manager
        return
    node = ran.node(node_id)
    at = snap.paused_at == node_id
    condition = node.break_when if node is not None and at else None
    status = str(snap.nodes.get(node_id, {}).get("status", ""))
    where = "at its breakpoint" if at else f"{status}, the run paused"
    st.markdown(f"**What waits at {escape_md(node_id)}** in run {code_md(run_id)} ({where}): the inputs it will "
                "start with. Step starts it; Resume goes on.")
    caught = breaks.matching(condition, inputs) if condition is not None and inputs else None
    if caught is not None and condition is not None and st.toggle(
            "Only the rows that met the condition", value=True, key=f"{key}.caught.{run_id}.{node_id}"):
        port, rows = caught
        count = len(rows["ids"])
        st.caption(f"{count} row{'s' if count != 1 else ''} of input {code_md(port)} meet the breakpoint's condition "
                   f"{code_md(condition.describe())}:")
        inputs = {port: rows}
    render_inputs(inputs, f"{key}.in.{run_id}.{node_id}", f"{ran.name}-{node_id}-inputs")


def render_inputs(inputs: dict[str, Any] | None, key: str, name: str) -> None:
    """A node's inputs by port, as its outputs are shown (``RunManager.inputs``: None when they
    cannot be read now)."""
    if inputs is None:
        st.caption("Its inputs cannot be read now (released from memory, or gone from Ray's object store): "
                   "look at the outputs of the nodes before it.")
    elif not inputs:
        st.caption("It has no inputs: it runs from its parameters.")
    else:
        render_outputs(inputs, {}, key=key, name=name)
