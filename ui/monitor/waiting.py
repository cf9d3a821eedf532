"""What waits at a node a paused run holds (at its breakpoint, or ready when Pause was pressed):
the inputs it will start with, as a debugger shows the variables at a breakpoint; with a
breakpoint condition, the rows that met it first. Shown under the designer's canvas and on the
Run page. On the Run page its parameters can be changed there for the run (edit and continue,
``engine.amend``): what the designer does with **Use in this run**."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine import breaks
from engine.errors import ServiceGridError
from ui.forms import render_fields, schema_fields, shown_values
from ui.monitor.controls import retry_now
from ui.monitor.live import render_node_error
from ui.monitor.outputs import render_outputs
from ui.render import code_md, escape_md
from ui.services import get_registry


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


def held_settings(manager: Any, run_id: str, node_id: str, key: str) -> None:
    """The parameters of ``node_id``, which paused run ``run_id`` holds, as a form: each change
    goes into the run at once (``RunManager.amend``), then Step or Resume runs the node with it;
    a refused one says why, and the form shows the run's value again."""
    try:
        node = manager.workflow(run_id).node(node_id)
    except KeyError:  # the run left the manager
        return
    if node is None or node.agent not in get_registry():
        return
    spec = get_registry().get(node.agent)
    fields = schema_fields(spec.params.model_json_schema())
    if not fields:
        return
    said_key = f"{key}.amend.said.{run_id}"
    with st.container(border=True):  # inside the Run page's expander: no expander of its own
        st.markdown(f"**Change {escape_md(node_id)}'s parameters for this run**")
        st.caption("Edit and continue: a change goes into this run at once, for this node (it has not started); "
                   "Step or Resume then runs it with it, and what follows it is computed again instead of read "
                   "from the cache. The run's record keeps what changed.")
        render_fields(fields, shown_values(spec.params, node.params), key_prefix=f"{key}.amend.{run_id}.{node_id}",
                      on_change=lambda name, value: _set_param(manager, run_id, node_id, name, value, said_key))
        said = st.session_state.pop(said_key, None)
        if said:
            kind, text = said
            (st.error if kind == "error" else st.success)(escape_md(text))


def _set_param(manager: Any, run_id: str, node_id: str, name: str, value: Any, said_key: str) -> None:
    """A field of ``held_settings`` changed (widget callback): the run takes the new value, or says why not."""
    try:
        node = manager.workflow(run_id).node(node_id)
        changed = manager.amend(run_id, [node.model_copy(update={"params": {**node.params, name: value}})])
    except KeyError:
        st.session_state[said_key] = ("error", f"run {run_id} has ended: nothing to change")
        return
    except ServiceGridError as exc:
        st.session_state[said_key] = ("error", f"not changed: {exc}")
        return
    lines = changed.get(node_id)
    st.session_state[said_key] = ("success", f"run {run_id} takes {node_id}: {'; '.join(lines)}" if lines
                                  else f"{node_id} has that value already")


def held_failure(manager: Any, run_id: str, node_id: str, node: dict[str, Any]) -> None:
    """A failed node the paused run holds (``pause_on_failure``): its error, its parameters as a
    form (``held_settings``) and **Retry**, which starts it again in the same run (a step)."""
    error, settings = st.columns([2.3, 1], gap="medium")
    with error:
        render_node_error(node.get("error") or {}, icon=":material/error:")
        st.button(f"Retry {node_id}", key=f"monitor.retry.{run_id}.{node_id}", icon=":material/restart_alt:",
                  type="primary", on_click=retry_now, args=(manager, run_id, node_id),
                  help="Start it again in this run, a fresh start with its retries (the nodes before it keep "
                       "their results); the run stays paused after it. Change its parameters first, beside this.")
    with settings:
        held_settings(manager, run_id, node_id, "monitor")
