"""Edit and continue in the designer: while a run started here goes on (paused at a breakpoint,
typically), the settings you change on nodes it has not started can go into it
(``RunManager.amend``, ``engine.amend``). A notice under the run row lists them, with what came
too late (the node ran already: Run again from here) and what only a new run can take.
"""

from __future__ import annotations

import streamlit as st

from engine.amend import Pending, as_run, pending_changes
from engine.errors import ServiceGridError
from engine.workflow import Workflow
from ui.editor import DesignerSession
from ui.render import code_md, escape_md
from ui.services import get_registry, get_run_manager
from ui.session import flash

SHOWN = 3  # changed nodes named in the notice (the rest counted)


def pending(sess: DesignerSession, run_id: str, statuses: dict[str, str]) -> tuple[Workflow, Pending] | None:
    """The drawn workflow as it would run, and how it differs from run ``run_id`` (which has the
    node statuses ``statuses``, by node id as it runs); None when the run left the manager or the
    workflow cannot be expanded (a broken component: validation says why)."""
    try:
        manager = get_run_manager()
        ran = manager.workflow(run_id)
        # failed nodes held for a retry may change too; a second snapshot only when some node failed
        held = manager.snapshot(run_id).held if "failed" in statuses.values() else {}
        now = as_run(sess.document, get_registry())
    except (KeyError, ServiceGridError, ValueError):
        return None
    return now, pending_changes(ran, now, statuses, held)


def _lines(changes: dict[str, list[str]]) -> str:
    named = [f"{code_md(node)} ({escape_md('; '.join(lines))})" for node, lines in list(changes.items())[:SHOWN]]
    more = f" and {len(changes) - SHOWN} more" if len(changes) > SHOWN else ""
    return ", ".join(named) + more


def amend_notice(sess: DesignerSession, run_id: str, statuses: dict[str, str]) -> None:
    """Under the run row, while the run started here goes on: the edits it can still take, with
    **Use in this run**; those that come too late or need a new run, said once."""
    found = pending(sess, run_id, statuses)
    if found is None or not found[1]:
        return
    changes = found[1]
    with st.container(border=True, key="designer_amend"):
        if changes.changes:
            text, button = st.columns([4, 1.3], vertical_alignment="center")
            text.markdown(f":material/edit_note: Changed since run {code_md(run_id)} started, and not started "
                          f"yet: {_lines(changes.changes)}.")
            button.button("Use in this run", key="designer_amend_apply", icon=":material/published_with_changes:",
                          on_click=apply_changes, args=(sess, run_id),
                          help="The run takes these settings for the nodes it has not started (edit and continue): "
                               "Step or Resume then runs them with the new settings, and what follows them is "
                               "computed again instead of read from the cache. The run's record keeps what changed.")
        if changes.too_late:
            st.caption(f":material/history: Already started or done in this run, so the change is for the next "
                       f"run (or **Run again from here**): {_lines(changes.too_late)}.")
        if changes.other:
            st.caption(f":material/account_tree: Only a new run can take: {escape_md('; '.join(changes.other[:SHOWN]))}"
                       f"{' ...' if len(changes.other) > SHOWN else ''}.")


def apply_changes(sess: DesignerSession, run_id: str) -> None:
    """**Use in this run** (widget callback): the run takes the settings of the changed nodes it
    has not started, read again now (a node may have started since the notice was drawn)."""
    manager = get_run_manager()
    try:
        snap = manager.snapshot(run_id)
    except KeyError:
        flash(f"Run {run_id} has ended: run the workflow again for your changes.", "warning")
        return
    found = pending(sess, run_id, {nid: str(n.get("status", "")) for nid, n in snap.nodes.items()})
    if found is None or not found[1].changes:
        flash(f"Nothing left to change in run {run_id}: the changed nodes have started.", "warning")
        return
    now, changes = found
    try:
        done = manager.amend(run_id, [node for nid in changes.changes if (node := now.node(nid)) is not None])
    except ServiceGridError as exc:
        flash(f"Run {run_id} is unchanged: {exc}", "error")
        return
    what = "; ".join(f"{node}: {', '.join(lines)}" for node, lines in done.items())
    sess.tell(f"run {run_id} takes the new settings ({what})" + (": Step or Resume to go on" if snap.paused else ""))
