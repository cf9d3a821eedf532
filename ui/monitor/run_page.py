"""The Run page: start a run (with the predicted plan first), then watch it live.

Only the run id is kept, in ``st.session_state`` and mirrored in ``st.query_params["run"]`` so a
reload or a page switch lands back on the live view. The live part is a ``st.fragment`` with
``run_every`` (1 s) while the run is active, and the node detail a slower one of its own (the
browser redraws less per tick); when the run ends, one full rerun drops both timers.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import streamlit as st

from engine.events import RunStatus
from engine.runstate import PAUSE_EVENTS, next_up, pauses_of
from ui import auth, state
from ui.monitor.controls import IDLE_PAUSED_S, pause_controls, paused_note
from ui.monitor.launch import launch_form
from ui.monitor.live import render_monitor, render_node_section
from ui.monitor.view import fill_demands, view_from_snapshot, view_from_store
from ui.monitor.waiting import held_failure, held_settings, waiting_inputs
from ui.render import escape_md
from ui.services import get_registry, get_run_manager, get_store

REFRESH_S = 1.0
DETAIL_REFRESH_S = 3.0  # the node detail (logs, waits, outputs) changes slowly; picking a node reruns it at once
NEW_RUN = "monitor_new_run"  # session flag: show the start form even though a run id is known
FROM_DESIGNER = "monitor_from_designer"  # session flag: preselect the designer's workflow once


def current_run_id() -> str | None:
    """The watched run: the session's, else the URL's (after a reload); mirrored into the URL."""
    ss = st.session_state
    wanted = st.query_params.get(state.QP_RUN)
    if wanted and ss.get(state.RUN_ID) is None:
        if auth.may_open_run(auth.current_user(), get_store(), wanted, get_run_manager()):
            ss[state.RUN_ID] = wanted
        else:
            st.warning(f"Run `{escape_md(wanted)}`: {auth.NOT_YOURS}.")
            st.query_params.pop(state.QP_RUN, None)
    run_id = ss.get(state.RUN_ID)
    if run_id and st.query_params.get(state.QP_RUN) != run_id:
        st.query_params[state.QP_RUN] = run_id  # page switches clear query params
    return run_id


def watch(run_id: str) -> None:
    """Make ``run_id`` the watched run (session and URL)."""
    st.session_state[state.RUN_ID] = run_id
    st.session_state[NEW_RUN] = False
    st.query_params[state.QP_RUN] = run_id


def start_from_designer() -> None:
    """For the designer's Run button: open the Run page with its start form on the open workflow."""
    st.session_state[NEW_RUN] = True
    st.session_state[FROM_DESIGNER] = True
    st.switch_page("pages/run.py")


def _start_new() -> None:
    st.session_state[NEW_RUN] = True


def render_run_page() -> None:
    st.markdown("### Run")
    manager, registry, store = get_run_manager(), get_registry(), get_store()
    run_id = current_run_id()
    if run_id is None or st.session_state.get(NEW_RUN):
        with st.container(border=True):
            new_id = launch_form(manager, registry, store)
        if new_id:
            watch(new_id)
            st.rerun()
        if run_id is None:
            return
        st.divider()
    cols = st.columns([1, 1, 4], vertical_alignment="center")
    cols[0].button("New run", key="monitor.new", icon=":material/add:", on_click=_start_new)
    cols[1].page_link("pages/history.py", label="History", icon=":material/history:")
    if manager.get(run_id) is not None:
        _live(run_id)
    else:
        _stored(run_id)


def live_every(snapshot: Any) -> float | None:
    """How often the live view refreshes: every ``REFRESH_S`` while the run goes on, every
    ``IDLE_PAUSED_S`` while it is paused with nothing running (it changes only when someone acts;
    a refresh then never races a click on Resume, Step or Retry), not at all once it ended."""
    if snapshot.status not in ("pending", "running"):
        return None
    if snapshot.paused and not any(n.get("status") == "running" for n in snapshot.nodes.values()):
        return IDLE_PAUSED_S
    return REFRESH_S


def _live(run_id: str) -> None:
    manager = get_run_manager()
    first = manager.snapshot(run_id)
    running, every = first.status in ("pending", "running"), live_every(first)
    workflow = manager.workflow(run_id).to_dict()  # for the status graph (edges and positions)

    def cancel_node(node_id: str) -> None:
        manager.cancel_node(run_id, node_id)

    @st.fragment(run_every=every)
    def live() -> None:
        snapshot = manager.snapshot(run_id)
        view = dataclasses.replace(view_from_snapshot(snapshot), workflow=workflow)
        head = st.columns([3.4, 0.9, 0.9, 1.1], vertical_alignment="center")
        head[0].markdown(f"**{escape_md(view.workflow_name)}** · run `{run_id}` · policy "
                         f"`{view.options.get('policy', '')}` · time scale {view.time_scale:g}")
        if view.running:
            pause_controls(manager, run_id, snapshot.paused, [head[1], head[2]], "monitor")
            head[3].button("Cancel run", key="monitor.cancel", icon=":material/stop_circle:", type="primary",
                           on_click=manager.cancel, args=(run_id,))
        if view.running and view.options.get("backend", "local") == "local" and len(manager.active_runs()) > 1:
            st.number_input("Priority among the runs going on", -100, 100, int(snapshot.priority), 1,
                            key=f"monitor.priority.{run_id}", on_change=_set_priority, args=(manager, run_id),
                            help="Higher: this run gets the resources that free up before the others")
        if snapshot.paused:
            st.info(paused_note(next_up(snapshot.nodes), str(view.options.get("policy", "")), snapshot.paused_at,
                                snapshot.paused_why, snapshot.held))
        render_monitor(view, "live", detail=False)
        if live_every(snapshot) != every:
            st.rerun()  # redefine the fragments at the new pace (or without timers, once it ended)

    @st.fragment(run_every=DETAIL_REFRESH_S if running else None)
    def detail() -> None:
        snapshot = manager.snapshot(run_id)
        view = dataclasses.replace(view_from_snapshot(snapshot), workflow=workflow)  # its edges: the focus
        if snapshot.outputs_released:
            st.caption("This run's outputs were released from memory to keep finished runs within the "
                       "server's output budget; nodes show their stored summary, or the result cache's copy.")
        if snapshot.paused and snapshot.paused_at and not RunStatus(snapshot.status).is_terminal:
            with st.expander(f"What waits at {escape_md(snapshot.paused_at)}", expanded=True):
                inputs, settings = st.columns([2.3, 1], gap="medium")  # the form beside the (long) inputs
                with inputs:
                    waiting_inputs(manager, run_id, snapshot.paused_at, "monitor")
                with settings:
                    held_settings(manager, run_id, snapshot.paused_at, "monitor")
        for failed in snapshot.held if not RunStatus(snapshot.status).is_terminal else ():
            with st.expander(f"{escape_md(failed)} failed: the run holds it", expanded=True):
                held_failure(manager, run_id, failed, snapshot.nodes.get(failed) or {})
        render_node_section(view, "live", outputs=lambda n: manager.outputs(run_id, n),
                            cancel_node=cancel_node if view.running else None)

    live()
    detail()


def _set_priority(manager: Any, run_id: str) -> None:
    """The priority box's callback: the run's next admissions follow the new priority."""
    try:
        manager.set_priority(run_id, int(st.session_state[f"monitor.priority.{run_id}"]))
    except (KeyError, ValueError):  # it ended, or left the manager
        pass


def _stored(run_id: str) -> None:
    store = get_store()
    detail = store.get_run(run_id)
    if detail is None:
        st.warning(f"No run `{escape_md(run_id)}` in this server or in the database.")
        if st.button("Start a new run", key="monitor.forget"):
            st.session_state.pop(state.RUN_ID, None)
            st.query_params.pop(state.QP_RUN, None)
            st.rerun()
        return
    st.caption("This run is not in this server's memory (finished long ago, or the server restarted): "
               "shown from the database. Open it in History to replay, compare, resume or export it.")
    render_monitor(fill_demands(view_from_store(detail, store.run_samples(run_id), store.node_logs(run_id),
                                               pauses_of(store.run_events(run_id, PAUSE_EVENTS))), get_registry()), "stored")
