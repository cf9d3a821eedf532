"""Starting a run from the designer, reading its node statuses for the canvas colours, and the
selected node's outputs under the canvas.

Only the run id is kept (session state and ``?run=``); statuses come from the run manager's
snapshot, read by the designer fragment while the run is active. Engine threads never call st.*.
"""

from __future__ import annotations

import json
from typing import Any

import streamlit as st

from engine.components import SEP, component_name, expand_components
from engine.errors import PinError, ServiceGridError
from engine.events import RunStatus
from engine.graphs import ancestors
from engine.inside import relative
from engine.results import pin_from_run
from engine.workflow import NodeSpec, PinSpec, Workflow, upstream_workflow, with_pin
from ui import auth, state
from ui.editor import DesignerSession
from ui.inside_view import shown_instance
from ui.monitor.controls import IDLE_PAUSED_S, retry_now
from ui.monitor.live import render_node_error, render_text_block
from ui.monitor.outputs import render_outputs
from ui.monitor.waiting import render_inputs, waiting_inputs
from ui.render import code_md, escape_md
from ui.services import get_registry, get_run_manager, get_store, runs_available
from ui.session import flash, save

REFRESH_S = 0.5
PAUSE_ON_FAILURE = "designer_pause_on_failure"  # session state: the run row's "Pause on failure" box
ACTIVE = ("pending", "running", "paused")


def designer_run_id() -> str | None:
    run_id = st.session_state.get(state.RUN_ID)
    return str(run_id) if run_id else None


def run_state() -> tuple[str | None, str | None, dict[str, str]]:
    """(run id, run status, node statuses) of the run started here; (None, None, {}) when none."""
    run_id = designer_run_id()
    if run_id is None or not runs_available():
        return None, None, {}
    manager = get_run_manager()
    if manager.get(run_id) is None:
        return run_id, None, {}
    snap = manager.snapshot(run_id)
    status = "paused" if snap.paused else str(snap.status)
    return run_id, status, {nid: str(n.get("status", "")) for nid, n in snap.nodes.items()}


def next_up_text(run_id: str) -> str:
    """For a paused run started here, the rest of "Run X: paused": where it paused (a breakpoint,
    or a failed node it holds) and what Step and Resume do next."""
    from engine.runstate import next_up
    from ui.monitor.controls import breakpoint_why, next_text

    try:
        snap = get_run_manager().snapshot(run_id)
    except KeyError:
        return ": Resume starts the rest."
    if snap.held:  # pause on failure
        failed = ", ".join(code_md(n) for n in snap.held)
        kind = next(iter(snap.held.values())).split(":", 1)[0]  # the error's type: the node shows the rest
        return (f": {failed} failed ({escape_md(kind)}). Select it to see why, fix it and **Retry it**; Resume "
                "goes on without it (what follows it is skipped).")
    at = f" at the breakpoint before {code_md(snap.paused_at)}{breakpoint_why(snap.paused_why)}" if snap.paused_at else ""
    return f"{at}. {next_text(next_up(snap.nodes), str(snap.options.get('policy', '')))}; Resume starts the rest."


def run_active() -> bool:
    return run_state()[1] in ACTIVE


def poll_every(status: str | None, statuses: dict[str, str]) -> float | None:
    """How often the designer's editor refreshes for the run started here: every ``REFRESH_S``
    while something of it runs, every ``IDLE_PAUSED_S`` while it is paused with nothing running
    (held at a breakpoint or a failure: a person's click then never races a refresh, and a class
    of paused runs costs the server little), not at all when there is no run going."""
    if status not in ACTIVE:
        return None
    if status == "paused" and "running" not in statuses.values():
        return IDLE_PAUSED_S
    return REFRESH_S


def run_to_target(sess: DesignerSession) -> tuple[str, Workflow] | None:
    """What Run to here runs for the selection: (the node, the part of the workflow up to it); with
    a component open, a node inside as the node it was opened from runs it (``desk/route``)."""
    node = sess.workflow.node(sess.selected[0]) if len(sess.selected) == 1 and sess.editable(sess.selected) else None
    if node is None or (sess.scope is not None and component_name(node) is not None):
        return None  # a component's node inside an open one names no node of the run
    target = inside_run_id(sess, node.id)
    return (target, upstream_of(sess.document, target)) if target is not None else None


def upstream_of(document: Workflow, node_id: str) -> Workflow:
    """``node_id`` and what it needs: of the drawn workflow, or of its expansion for a node inside
    a component (``desk/route``)."""
    if document.node(node_id) is None:
        document = expand_components(document)[0]
    return upstream_workflow(document, [node_id])


def start_run(sess: DesignerSession, scale_key: str, to: str | None = None, paused: bool = False,
              rerun: str | None = None) -> None:
    """Submit the open workflow (widget callback), or with ``to`` only that node and the nodes it
    needs (``engine.workflow.upstream_workflow``); the run id goes to the session and the URL.

    ``scale_key`` names the widget holding the time scale (read at click time, not at draw time).
    ``paused``: start it paused and start its first node (Step through: each Step then starts one more).
    ``rerun``: compute that node and all after it again, whatever the cache holds (Run again from here).
    """
    from engine.runs import RunOptions

    time_scale = float(st.session_state.get(scale_key) or 1.0)
    try:
        document = sess.document  # with a component open: the workflow around it
        workflow = upstream_of(document, to) if to else document
        handle = auth.submit_for_user(get_run_manager(), workflow,
                                      RunOptions(time_scale=time_scale, start_paused=paused,
                                                 rerun=(rerun,) if rerun else (),
                                                 pause_on_failure=bool(st.session_state.get(PAUSE_ON_FAILURE))))
        if paused:
            handle.step()
    except (ServiceGridError, ValueError) as exc:
        flash(f"The run could not start: {exc}", "error")
        return
    st.session_state[state.RUN_ID] = handle.run_id
    st.query_params[state.QP_RUN] = handle.run_id
    part = f" (up to {to}: {len(workflow.nodes)} of {len(sess.document.nodes)} nodes)" if to else ""
    how = ", paused after its first node: Step starts the next, Resume the rest" if paused else ""
    how += f", computing {rerun} and all after it again" if rerun else ""
    sess.tell(f"run {handle.run_id} started{part}{how}")


COUNTS = "designer_run_counts"  # session state: (run id, node) -> items per output port, counted once


def counted_items(sess: DesignerSession, run_id: str | None, statuses: dict[str, str]) -> dict[tuple[str, str], int]:
    """(node, output port) -> the items that came out of it in the run started here, for the
    nodes that finished and have not changed since (nor anything before them). Counted from the
    outputs the run manager holds in memory (never read back from the result cache), once per
    run and node."""
    if run_id is None:
        return {}
    manager = get_run_manager()
    try:
        ran = manager.workflow(run_id)
    except KeyError:
        return {}
    memo: dict[tuple[str, str], dict[str, int]] = st.session_state.setdefault(COUNTS, {})
    counts: dict[tuple[str, str], int] = {}
    document = sess.document  # with a component open: the workflow around it
    now = expand_components(document)[0]  # what a run computes: components expanded
    same = _computation(ran) == _computation(now)  # the common case: one comparison for all nodes
    for node_id, status in statuses.items():
        if status not in ("done", "cached") or now.node(node_id) is None:
            continue
        if not same and changed_since_run(ran, now, node_id):
            continue
        if (run_id, node_id) not in memo:
            memo[(run_id, node_id)] = manager.item_counts(run_id, node_id)
        counts.update({(node_id, port): n for port, n in memo[(run_id, node_id)].items()})
    for node in document.nodes:  # a component's output carries what its node inside gave
        definition = document.component(component_name(node) or "")
        for port in definition.outputs if definition is not None else ():
            inner = counts_of(counts, f"{node.id}{SEP}{port.node}", port.port)
            if inner is not None:
                counts[(node.id, port.name)] = inner
    for key in [k for k in memo if k[0] != run_id]:  # only the latest run's counts are kept
        del memo[key]
    return counts


def counts_of(counts: dict[tuple[str, str], int], node_id: str, port: str | None) -> int | None:
    """The items counted out of ``node_id``'s ``port`` (None: its only port)."""
    if port is not None:
        return counts.get((node_id, port))
    mine = [n for (nid, _), n in counts.items() if nid == node_id]
    return mine[0] if len(mine) == 1 else None


def retry_node(sess: DesignerSession, run_id: str, node_id: str) -> None:
    """**Retry it** (widget callback): the failed node the run holds starts again (a step)."""
    if retry_now(get_run_manager(), run_id, node_id):
        sess.tell(f"run {run_id}: {node_id} started again; the run stays paused after it")
    else:
        flash(f"Run {run_id} no longer holds {node_id}: it was retried already, or the run went on.", "warning")


def cancel_run(sess: DesignerSession, run_id: str) -> None:
    """Stop the run started here (widget callback); finished nodes stay done."""
    try:
        get_run_manager().cancel(run_id)
    except KeyError:  # it left the manager: nothing to stop
        return
    sess.tell(f"run {run_id} cancelled: the nodes that finished keep their results")


def _setup(node: NodeSpec) -> tuple[str, ...]:
    """What a node computes with: its agent, parameters and overrides (not its label or place)."""
    return (node.agent, node.params_key(), json.dumps(node.resources, sort_keys=True, default=str),
            json.dumps(node.lifecycle, sort_keys=True, default=str))


def _wires(wf: Workflow) -> set[tuple[str, str, str, str]]:
    return {(e.source, e.source_port or "", e.target, e.target_port or "") for e in wf.edges}


def _computation(wf: Workflow) -> tuple[Any, ...]:
    """What a workflow computes (its nodes' agents and settings, its wires), not how it is drawn."""
    return tuple((n.id, *_setup(n)) for n in wf.nodes), tuple(sorted(_wires(wf)))


def changed_since_run(ran: Workflow, now: Workflow, node_id: str) -> bool:
    """Whether what made ``node_id``'s outputs in the run of ``ran`` differs in ``now``: the node or
    any node upstream of it (agent, parameters, overrides) or the wires into them."""
    def upstream(wf: Workflow) -> tuple[dict[str, tuple[str, ...]], set[tuple[str, str, str, str]]]:
        wires = _wires(wf)
        keep = ancestors([node_id], ((w[0], w[2]) for w in wires))
        return {n.id: _setup(n) for n in wf.nodes if n.id in keep}, {w for w in wires if w[2] in keep}

    return upstream(ran) != upstream(now)


def node_outputs_section(sess: DesignerSession, run_id: str | None, statuses: dict[str, str],
                         run_status: str | None = None) -> None:
    """Under the canvas: the selected node's outputs in the run started here, once it has them
    (Orange's data table, ComfyUI's previews), with a word when the graph changed since. With a
    component open, a node inside shows its outputs in the node the component was opened from.
    ``run_status``: the run's status as ``run_state`` read it this draw (not read again)."""
    if run_id is None or len(sess.selected) != 1:
        return
    node_id = sess.selected[0]
    if sess.scope is not None:  # the node inside, as the instance it was opened from ran it
        node_id = inside_run_id(sess, node_id) or ""
    if statuses.get(node_id) in WAITING and run_status == "paused":
        waiting_inputs_section(sess, run_id, node_id)
        return
    if statuses.get(node_id) in ("failed", "skipped"):
        if sess.scope is None and not _plain(sess.workflow, node_id):  # a component's node: the node inside that failed
            node_id = next((n for n, s in sorted(statuses.items()) if n.startswith(node_id + SEP) and s == "failed"),
                           next((n for n, s in sorted(statuses.items()) if n.startswith(node_id + SEP) and s == "skipped"), ""))
        if node_id:
            failed_node_section(sess, run_id, node_id, statuses[node_id])
        return
    if statuses.get(node_id) not in ("done", "cached"):
        return
    node = sess.workflow.node(node_id) if sess.scope is None else None
    if node is not None and component_name(node) is not None:
        _component_outputs(sess, node, run_id, statuses[node_id])
        return
    manager = get_run_manager()
    try:
        values, ran = manager.outputs(run_id, node_id), manager.workflow(run_id)
        # the stored summary only where the values are gone (run_state took a snapshot this rerun already)
        summary = {} if values else manager.snapshot(run_id).nodes.get(node_id, {}).get("output_summary") or {}
    except KeyError:  # the run left the manager
        return
    with st.container(border=True):
        st.markdown(f"**Outputs of {escape_md(node_id)}** in run {code_md(run_id)} ({statuses[node_id]})")
        again, button, _ = st.columns([1, 1, 1.2], vertical_alignment="center")
        if not run_active():
            again.button("Run again from here", key=f"designer.rerun.{node_id}", icon=":material/replay:",
                         on_click=start_run, args=(sess, "designer_time_scale", None, False, node_id),
                         help="Run the workflow, computing this node and every node after it again even where "
                              "the cache holds their results (the nodes before it come from the cache): for a "
                              "result you no longer trust, or one that should differ")
        pin = _pin_of(manager, ran, run_id, node_id) if node is not None else None  # not inside a component
        if pin is not None and node is not None and (node.pin is None or node.pin.key != pin.key):
            button.button("Pin this output", key=f"designer.pin.{node_id}", icon=":material/push_pin:",
                          on_click=pin_output, args=(sess, node_id, pin),
                          help="Later runs take this node's output from this run instead of computing it, and "
                               "skip the nodes that only feed it, so you can work on what comes after it "
                               "(n8n's pinned data). Unpin it in the properties panel.")
        if changed_since_run(ran, expand_components(sess.document)[0], node_id):
            st.caption(":material/history: This node, or one before it, has changed since that run: run again to "
                       "see what it gives now.")
        render_outputs(values, summary, key=f"designer.out.{node_id}", name=f"{sess.document.name}-{node_id}")


WAITING = ("queued", "waiting_resource")  # ready to start: a paused run holds them


def waiting_inputs_section(sess: DesignerSession, run_id: str, node_id: str) -> None:
    """Under the canvas, for a node a paused run holds: the inputs it will start with
    (``ui.monitor.waiting``), and a word when it, or a node before it, was changed since the run
    started (the run goes on with what it started with)."""
    manager = get_run_manager()
    with st.container(border=True):
        waiting_inputs(manager, run_id, node_id, "designer")
        try:
            ran = manager.workflow(run_id)
        except KeyError:
            return
        if ran.node(node_id) is not None and changed_since_run(ran, expand_components(sess.document)[0], node_id):
            st.warning(f"{escape_md(node_id)}, or a node before it, has changed since run {code_md(run_id)} started: "
                       "Step and Resume run it as it was then, unless the run takes the new settings (**Use in "
                       "this run**, above: for nodes not started yet). Otherwise cancel this run and run it again "
                       "from here (what comes before it comes from the cache).", icon=":material/history:")


def paused_here(sess: DesignerSession, run_id: str | None) -> str | None:
    """The node drawn on the canvas now where the run started here paused at a breakpoint (the
    node itself, the component's node holding it, or, with that component open from there, the
    node inside it); None when it did not pause at one, or elsewhere."""
    if run_id is None:
        return None
    try:
        at = get_run_manager().snapshot(run_id).paused_at
    except KeyError:
        return None
    if not at:
        return None
    if sess.scope is None:
        head = at.split(SEP, 1)[0]
        return head if sess.workflow.node(head) is not None else None
    instance = shown_instance(sess)
    return relative(at, [instance]) if instance is not None else None


def _plain(workflow: Workflow, node_id: str) -> bool:
    """A node of the workflow that runs as itself (not a component's node)."""
    node = workflow.node(node_id)
    return node is not None and component_name(node) is None


def failed_node_section(sess: DesignerSession, run_id: str, node_id: str, status: str) -> None:
    """Under the canvas, for a node that failed in the run started here: its error (with the
    traceback), its last log lines and the inputs it was given, so the cause can be seen where the
    node is drawn (ComfyUI's error on the node); for a skipped one, why. **Run again from here**
    once it is fixed."""
    manager = get_run_manager()
    try:
        snap = manager.snapshot(run_id)  # once: the node, whether the run goes on, whether it holds the node
    except KeyError:  # the run left the manager
        return
    node, going = snap.nodes.get(node_id) or {}, not RunStatus(snap.status).is_terminal
    with st.container(border=True):
        if status == "skipped":
            st.markdown(f"**{escape_md(node_id)} was skipped** in run {code_md(run_id)}: "
                        f"{escape_md(node.get('reason') or 'a node before it did not finish')}.")
            return
        st.markdown(f"**Why {escape_md(node_id)} failed** in run {code_md(run_id)} "
                    f"(after {int(node.get('attempts') or 0)} attempt{'s' if node.get('attempts') != 1 else ''})")
        render_node_error(node.get("error") or {}, icon=":material/error:")
        if logs := node.get("logs"):
            st.caption("Its last log lines:")
            render_text_block("\n".join(logs[-8:]))
        if node_id in snap.held:  # pause on failure: the run waits for it
            st.caption(":material/pause_circle: The run holds it, and what follows it: fix its settings in the panel "
                       "(then **Use in this run**, above) and **Retry it**, or **Resume** to go on without it.")
            st.button("Retry it", key=f"designer.retry.{node_id}", icon=":material/restart_alt:", type="primary",
                      on_click=retry_node, args=(sess, run_id, node_id),
                      help="Start this node again in the same run, a fresh start with its retries (the nodes "
                           "before it keep their results); the run stays paused after it")
        elif not going:
            st.button("Run again from here", key=f"designer.rerun.{node_id}", icon=":material/replay:",
                      on_click=start_run, args=(sess, "designer_time_scale", None, False, node_id),
                      help="Once it is fixed (its parameters, its inputs' settings), run the workflow again "
                           "from this node: the nodes before it come from the cache")
        with st.expander("What it was given (its inputs)"):
            render_inputs(manager.inputs(run_id, node_id), f"designer.given.{node_id}",
                          f"{sess.document.name}-{node_id}-inputs")


def inside_run_id(sess: DesignerSession, node_id: str) -> str | None:
    """With a component open, the id a run gives node ``node_id`` inside it, in the instance it was
    opened from (``desk/route``)."""
    if sess.scope is None:
        return node_id
    instance = shown_instance(sess)
    return f"{instance}{SEP}{node_id}" if instance is not None else None


def _component_outputs(sess: DesignerSession, node: NodeSpec, run_id: str, status: str) -> None:
    """A component's outputs: those of the nodes inside that its output ports stand for."""
    definition = sess.workflow.component(component_name(node) or "")
    manager = get_run_manager()
    with st.container(border=True):
        st.markdown(f"**Outputs of {escape_md(node.id)}** in run {code_md(run_id)} ({status})")
        if not run_active():
            st.button("Run again from here", key=f"designer.rerun.{node.id}", icon=":material/replay:",
                      on_click=start_run, args=(sess, "designer_time_scale", None, False, node.id),
                      help="Run the workflow, computing every node of this component and every node after it "
                           "again even where the cache holds their results")
        for port in definition.outputs if definition is not None else ():
            inner = f"{node.id}{SEP}{port.node}"
            try:
                values = manager.outputs(run_id, inner)
                summary = {} if values else manager.snapshot(run_id).nodes.get(inner, {}).get("output_summary") or {}
            except KeyError:
                return
            if port.port and values and port.port in values:
                values = {port.port: values[port.port]}
            st.markdown(f"{code_md(port.name)} · from {escape_md(port.node)}")
            render_outputs(values, summary, key=f"designer.out.{node.id}.{port.name}",
                           name=f"{sess.workflow.name}-{node.id}-{port.name}")


def _pin_of(manager: Any, ran: Workflow, run_id: str, node_id: str) -> PinSpec | None:
    """The pin of ``node_id``'s output in run ``run_id`` (None when it has no stored output)."""
    try:
        return pin_from_run(ran, node_id, run_id, get_registry(), manager.results)
    except PinError:
        return None


def pin_output(sess: DesignerSession, node_id: str, pin: PinSpec) -> None:
    """Pin ``node_id`` to ``pin`` (widget callback): one undo step, saved at once."""
    if sess.workflow.node(node_id) is None:
        return
    sess.push(with_pin(sess.workflow, node_id, pin))
    save(sess, get_store())
    sess.tell(f"{node_id} is pinned to its output from run {pin.run_id}: runs read it instead of computing it "
              "(unpin it in the properties panel)")
