"""The monitor view of one run (live or stored): progress with ETA, status table, Gantt, resource
charts, utilisation, and a per-node detail (wait breakdown, times, retries, logs, traceback,
outputs, cancel). Pages wrap ``render_monitor`` in a ``run_every`` fragment while a run is live
(the node detail may go in a slower fragment of its own: ``detail=False`` + ``render_node_section``)."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import streamlit as st

from engine.amend import CHANGED_LOG
from ui.lifecycle_svg import lifecycle_svg, node_lifecycle
from ui.monitor import charts, frames
from ui.monitor.outputs import render_outputs
from ui.monitor.status_graph import status_graph_spec
from ui.monitor.view import RunView, duration, wait_breakdown
from ui.render import code_md, escape_md
from ui.services import get_registry

STATUS_ICONS = {"succeeded": ":material/check_circle:", "failed": ":material/error:",
                "cancelled": ":material/cancel:", "interrupted": ":material/pause_circle:",
                "running": ":material/progress_activity:", "pending": ":material/schedule:"}


def progress_text(view: RunView) -> str:
    done, total = view.progress
    eta = f" · ETA {view.eta_s:,.1f} s" if view.running and view.eta_s is not None else ""
    counts: dict[str, int] = {}
    for node in view.nodes.values():
        counts[str(node.get("status", ""))] = counts.get(str(node.get("status", "")), 0) + 1
    # a run that did not succeed says how its nodes ended ("2/2 nodes" alone reads as all done)
    ended = "" if view.running or view.status == "succeeded" else " (" + ", ".join(
        f"{n} {status}" for status, n in sorted(counts.items()) if status) + ")"
    status = "paused" if view.running and view.pauses and view.pauses[-1][1] is None else view.status
    return f"run {view.run_id}: {status} · {done}/{total} nodes{ended} · {view.elapsed_s:,.1f} s{eta}"


CHART_HELP = (f"**Gantt**: each node's actual run (thin bar, coloured by status) over the planner's prediction "
              "(grey; the critical path is outlined red). **CPU** and **memory**: what each agent used, with the "
              "machine's capacity as a dashed red line. **Reserved share**: how much of each resource the "
              "scheduler had handed out (one resource chart at a time: pick its tab). Long runs are thinned to "
              f"at most {frames.MAX_POINTS:,} points per chart.")


def pauses_said(view: RunView) -> str:
    """The run's pauses in a line, with what paused it each time ("Paused twice (the shaded
    spans): breakpoint before route: ... for 3.1 s; Pause for 1.2 s"), or "" when it never paused."""
    if not view.pauses:
        return ""
    spans = [f"{escape_md(why or 'Pause')} for {max(0.0, (view.now if b is None else b) - a):,.1f} s"
             + (" (still paused)" if b is None and view.running else "") for a, b, why in view.pauses]
    count = {1: "once", 2: "twice"}.get(len(spans), f"{len(spans)} times")
    return f":material/pause_circle: Paused {count} (the shaded spans): " + "; ".join(spans[:6]) + (
        f"; and {len(spans) - 6} more" if len(spans) > 6 else "")


def changes_said(view: RunView) -> str:
    """The settings changed while the run went on (edit and continue, ``engine.amend``), read
    from the nodes' logs, in a line; "" when none was."""
    said = [f"{code_md(nid)}: {escape_md(line.removeprefix(CHANGED_LOG))}"
            for nid, node in view.nodes.items() for line in node.get("logs") or () if line.startswith(CHANGED_LOG)]
    if not said:
        return ""
    return (":material/edit_note: Changed during the run, before the node started: " + "; ".join(said[:6])
            + (f"; and {len(said) - 6} more" if len(said) > 6 else ""))


def render_node_error(error: dict[str, Any], icon: str | None = None) -> None:
    """A failed node's error (type: message), with its traceback in an expander."""
    st.error(f"{escape_md(error.get('type') or 'Error')}: {escape_md(error.get('message') or 'failed')}", icon=icon)
    if error.get("traceback"):
        with st.expander("Traceback"):
            render_text_block(error["traceback"])


def render_progress(view: RunView) -> None:
    done, total = view.progress
    st.progress(done / total if total else 0.0, text=progress_text(view))


RESOURCE_TABS = (("CPU", "cpu", "cpu"), ("Memory", "memory", "memory"), ("Reserved share", "utilisation", "util"),
                 ("Planned vs measured", "fit", "fit"))


def render_charts(view: RunView, key: str) -> None:
    """The Gantt, then the resource charts in lazy tabs: only the open tab's chart is built, sent and
    drawn (each Vega chart's first draw is ~50 ms of browser work, and a page's charts are all drawn
    in one browser task). Stable keys: the charts update in place."""
    specs = {"gantt": charts.gantt_spec(view)}
    st.vega_lite_chart(spec=specs["gantt"], width="stretch", key=f"{key}.gantt")
    if said := pauses_said(view):
        st.caption(said)
    if said := changes_said(view):
        st.caption(said)
    tabs = st.tabs([label for label, _, _ in RESOURCE_TABS], key=f"{key}.resources", on_change="rerun")
    for tab, (_, name, suffix) in zip(tabs, RESOURCE_TABS, strict=True):
        with tab:
            if tab.open:
                if name in ("cpu", "memory") and (note := few_samples_note(view)):
                    st.caption(note)
                specs[name] = charts.BUILDERS[name](view)
                if name == "fit":
                    render_fit(view, specs[name], key)
                    continue
                st.vega_lite_chart(spec=specs[name], width="stretch", key=f"{key}.{suffix}")
    counts = " · ".join(f"{name} {charts.point_count(spec)}" for name, spec in specs.items())
    # a short help line; the point counts of the drawn charts stay in the page, hidden, for the browser tests
    st.caption(f"Hover a Gantt bar for its exact times. <span hidden>Points drawn: {counts}</span>",
               unsafe_allow_html=True, help=CHART_HELP)


def render_fit(view: RunView, spec: dict[str, Any], key: str) -> None:
    """Each finished node's measured time and memory against its plan and reservation, and the
    largest mismatches in words (what the Lab's learned estimates and right-sizing act on)."""
    rows = spec["datasets"]["fit"]
    if not rows:
        st.caption("No node has finished yet (cached nodes ran nothing): each one's planned and measured time and "
                   "memory show here as it ends.")
        return
    st.vega_lite_chart(spec=spec, key=f"{key}.fit")
    lines = frames.fit_summary(view, rows)
    st.caption(("Furthest from the plan: " + "; ".join(escape_md(line) for line in lines) + ".") if lines else
               "No node was far from its plan: none used more memory than reserved, and no gap is as much as "
               f"{frames.FIT_NOTABLE:.0%} of the run's time or of the machine's memory.",
               help="A bar is what the node measured: its wall time, the memory it raised the process by (its own "
                    "process's growth when isolated), its peak GPU memory. The dark tick is the plan: the planned "
                    "duration (learned from earlier runs where the plan used them) and the memory reserved for it. "
                    "Red: above the plan (memory: any more than reserved, which lets the scheduler over-commit). "
                    "Amber: under half of it. An agent's first run in a server process also pays for its imports "
                    "and model loading (its tooltip and the line above say so). After a few runs the Lab's Learned estimates tab plans with what was "
                    "measured and suggests memory reservations.")


SAMPLE_PERIOD_S = 0.25  # the engine's sampler: 4 readings a second (engine.runs.RunOptions.sample_hz)


def few_samples_note(view: RunView) -> str | None:
    """Why the CPU and memory charts of a finished run show a dot or two, not a line: a run shorter
    than a few sampling periods has only that many readings (the Gantt has its exact times)."""
    if view.running or len(view.samples) > 2:
        return None
    return (f"This run took {view.elapsed_s:,.2f} s and the process is sampled {1 / SAMPLE_PERIOD_S:g} times a "
            f"second, so these charts have {len(view.samples)} reading{'s' if len(view.samples) != 1 else ''}; "
            "the Gantt above has each node's exact times, and Planned vs measured compares each node with its plan.")


NODE_COLUMNS: dict[str, Any] = {
    "attempts": st.column_config.NumberColumn("attempts", help="how many times it was started (retries included)"),
    "start_s": st.column_config.NumberColumn("start (s)", format="%.2f", help="seconds after the run started"),
    "wall_s": st.column_config.NumberColumn("wall (s)", format="%.2f",
                                            help="wall-clock seconds it ran (so far, while it runs)"),
    "cpu_s": st.column_config.NumberColumn("CPU (s)", format="%.3f", help="CPU seconds it used"),
    "memory_mb": st.column_config.NumberColumn(
        "memory (MB)", format="%.1f",
        help="how far the process's memory rose while the node ran (read at each batch and 4 times a second), "
             "and at least what its outputs hold; nodes running at the same time share the count. An isolated "
             "node: how far its own process grew while the agent ran; a node fused into a chain: counted in the chain's first node. The "
             "whole process's memory is in the Memory chart."),
    "why": st.column_config.TextColumn("waiting for / error", width="large"),
}
COMPONENT_COLUMNS = {
    "component": st.column_config.TextColumn("component", help="the node of the drawn workflow that runs them"),
    "of": st.column_config.TextColumn("is a", help="the component it is an instance of"),
    "span_s": st.column_config.NumberColumn("span s", help="from its first node's start to its last node's end"),
    "busy_s": st.column_config.NumberColumn("busy s", help="its nodes' running times added up (more than the span "
                                                             "when they ran side by side)"),
    "memory_mb": st.column_config.NumberColumn("memory MB", help="the most memory one of its nodes held"),
}
MISSING = "—"  # st.dataframe's placeholder for missing values (it shows "None" otherwise)


def node_rows(view: RunView) -> list[dict[str, Any]]:
    """The status table's rows: frames.node_table with each node's own memory after CPU."""
    rows = []
    for row in frames.node_table(view):
        own = (view.nodes.get(row["node"]) or {}).get("memory_mb")
        why = row.pop("why")
        rows.append({**row, "memory_mb": round(float(own), 1) if own is not None else None, "why": why})
    return rows


def render_status_table(view: RunView, key: str) -> None:
    st.dataframe(node_rows(view), hide_index=True, width="stretch", key=f"{key}.nodes", column_config=NODE_COLUMNS,
                 placeholder=MISSING)


def _times(view: RunView, node: dict[str, Any]) -> list[str]:
    def rel(ts: float | None) -> str:
        return f"{ts - view.t0:,.2f} s" if ts is not None else "—"

    wall = duration(node, view.now)
    return [f"queued {rel(node.get('queued_at'))}", f"inputs ready {rel(node.get('ready_at'))}",
            f"started {rel(node.get('start'))}", f"ended {rel(node.get('end'))}",
            f"wall {wall:,.2f} s" if wall is not None else "wall —",
            f"CPU {node['cpu_s']:,.3f} s" if node.get("cpu_s") is not None else "CPU —"]


def render_text_block(text: str) -> None:
    """Log lines or a traceback as escaped preformatted text. Not ``st.code``: its syntax highlighter
    is a large script the browser would load and evaluate on every page load (a long task)."""
    st.markdown(f'<pre style="{PRE_STYLE}">{html.escape(text)}</pre>', unsafe_allow_html=True)


PRE_STYLE = ("max-height: 20rem; overflow: auto; white-space: pre-wrap; font-size: 0.8rem; padding: 0.5rem 0.75rem; "
             "border-radius: 0.5rem; background: rgba(148, 163, 184, 0.12)")


def render_node_detail(view: RunView, node_id: str, key: str,
                       outputs: Callable[[str], dict[str, Any] | None] | None = None,
                       cancel: Callable[[str], None] | None = None) -> None:
    """Wait breakdown, times, retries, logs, traceback and outputs of one node."""
    node = view.nodes[node_id]
    status = node["status"]
    head = st.columns([3, 1], vertical_alignment="center")
    head[0].markdown(f"**{escape_md(node_id)}** · {code_md(node.get('agent', ''))} · status **{status}**"
                     f"{' (from cache)' if node.get('cached') else ''} · device {code_md(node.get('device') or '—')}"
                     f" · attempts {node.get('attempts', 0)}")
    if cancel is not None and status not in ("done", "cached", "failed", "skipped", "cancelled", "interrupted"):
        head[1].button("Cancel node", key=f"{key}.cancelnode.{node_id}", icon=":material/block:",
                       on_click=cancel, args=(node_id,))
    if status == "waiting_inputs" and node.get("waiting_for"):
        st.info("Waiting for inputs from: " + ", ".join(code_md(p) for p in node["waiting_for"]))
    elif status == "waiting_resource":
        held = f"; held by {', '.join(code_md(h) for h in node.get('held_by') or [])}" if node.get("held_by") else ""
        st.warning(f"Waiting for resource {code_md(node.get('waiting_resource') or '?')}{held}")
    waits = wait_breakdown(node)
    cols = st.columns(4 if waits["paused"] else 3)
    cols[0].metric("Waited for inputs", f"{waits['inputs']:,.2f} s")
    cols[1].metric("Waited for resources", f"{waits['resources']:,.2f} s",
                   help=", ".join(f"{k}: {v:,.2f} s" for k, v in (node.get("wait_resource") or {}).items()
                                  if isinstance(v, int | float)) or None)
    cols[2].metric("Waited in queue", f"{waits['queue']:,.2f} s")
    if waits["paused"]:
        cols[3].metric("Held by the pause", f"{waits['paused']:,.2f} s",
                       help="ready to start while the run was paused (Pause / Step)")
    st.caption(" · ".join(_times(view, node)))
    if (rules := node_lifecycle(view.workflow, node_id, get_registry())) is not None:
        st.image(lifecycle_svg(rules[0], rules[1], status, int(node.get("attempts") or 0),
                               (node.get("error") or {}).get("type")), width=560)
    if node.get("reason"):
        st.caption(f"Reason: {escape_md(node['reason'])}")
    if node.get("error"):
        render_node_error(node["error"])
    logs, out_tab = st.tabs(["Logs", "Outputs"])
    with logs:
        render_text_block("\n".join(node.get("logs") or []) or "(no log lines)")
    with out_tab:
        values = outputs(node_id) if outputs is not None and status in ("done", "cached") else None
        if values is None and node.get("outputs_dropped"):
            st.caption("This node does not keep its outputs (lifecycle.execution.keep_outputs is off): "
                       "they were dropped once the nodes after it had them.")
        render_outputs(values, node.get("output_summary") or {}, key=f"{key}.out.{node_id}",
                       name=f"{view.workflow_name}-{node_id}")


def render_monitor(view: RunView, key: str, *, outputs: Callable[[str], dict[str, Any] | None] | None = None,
                   cancel_node: Callable[[str], None] | None = None, detail: bool = True) -> None:
    """Everything about one run; ``outputs`` (live runs, or the result cache for stored ones) and
    ``cancel_node`` (live runs) are optional. With ``detail=False`` the node detail is left out
    (the caller draws ``render_node_section`` itself)."""
    render_progress(view)
    if view.error and not view.running:
        st.caption(f"{STATUS_ICONS.get(view.status, '')} {escape_md(view.error)}")
    util = frames.mean_utilisation(view)
    if util:
        st.caption("Mean reserved share: " + " · ".join(f"{escape_md(k)} {v:g} %" for k, v in util.items()))
    if view.workflow.get("nodes"):
        st.vega_lite_chart(spec=status_graph_spec(view), width="stretch", key=f"{key}.graph")
    render_status_table(view, key)
    if rows := frames.component_table(view):  # ComfyUI users asked for times per subgraph
        st.markdown("**Components**")
        st.dataframe(rows, hide_index=True, width="stretch", key=f"{key}.components", placeholder=MISSING,
                     column_config=COMPONENT_COLUMNS)
    render_charts(view, key)
    if detail:
        render_node_section(view, key, outputs=outputs, cancel_node=cancel_node)


def render_node_section(view: RunView, key: str, *, outputs: Callable[[str], dict[str, Any] | None] | None = None,
                        cancel_node: Callable[[str], None] | None = None) -> None:
    """The node picker and the picked node's detail."""
    ids = view.node_ids()
    if not ids:
        return
    st.markdown("#### Node detail")
    # follows the run (a failure, else the running node, else the result) until the person picks one
    widget, picked = f"{key}.node", f"{key}.node.picked.{view.run_id}"
    if not st.session_state.get(picked) or st.session_state.get(widget) not in ids:
        st.session_state[widget] = view.focus_node()
    node_id = st.selectbox("Node", ids, key=widget, format_func=lambda n: f"{n} ({view.nodes[n]['status']})",
                           on_change=lambda: st.session_state.__setitem__(picked, True))
    if node_id in view.nodes:
        render_node_detail(view, node_id, key, outputs=outputs, cancel=cancel_node)
