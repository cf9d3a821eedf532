"""Starting a run from the designer and reading its node statuses for the canvas colours.

Only the run id is kept (session state and ``?run=``); statuses come from the run manager's
snapshot, read by the designer fragment while the run is active. Engine threads never call st.*.
"""

from __future__ import annotations

import streamlit as st

from engine.errors import ServiceGridError
from ui import auth, state
from ui.editor import DesignerSession
from ui.services import get_run_manager, runs_available
from ui.session import flash

REFRESH_S = 0.5
ACTIVE = ("pending", "running")


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
    return run_id, str(snap.status), {nid: str(n.get("status", "")) for nid, n in snap.nodes.items()}


def run_active() -> bool:
    return run_state()[1] in ACTIVE


def start_run(sess: DesignerSession, scale_key: str) -> None:
    """Submit the open workflow (widget callback); the run id goes to the session and the URL.

    ``scale_key`` names the widget holding the time scale (read at click time, not at draw time).
    """
    from engine.runs import RunOptions

    time_scale = float(st.session_state.get(scale_key) or 1.0)
    try:
        handle = auth.submit_for_user(get_run_manager(), sess.workflow, RunOptions(time_scale=time_scale))
    except (ServiceGridError, ValueError) as exc:
        flash(f"The run could not start: {exc}", "error")
        return
    st.session_state[state.RUN_ID] = handle.run_id
    st.query_params[state.QP_RUN] = handle.run_id
    sess.tell(f"run {handle.run_id} started")
