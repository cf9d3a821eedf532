"""The class view of History: the schedules each student's runs of one workflow gave, side by side
(the anchor study's differentiator 14: a teacher compares students' schedules on the same task).

Runs are compared by their planned makespan at time scale 1 (``predicted_makespan_s``: what the
student's policy and capacity give for the task, whatever time scale the run used), with each
student's best run, how many runs they made and how the last one ended.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import streamlit as st

from ui.render import escape_md

NOBODY = "(no user)"


def class_rows(runs: Sequence[Any]) -> list[dict[str, Any]]:
    """One row per user: runs, succeeded, their best (shortest) planned makespan with its policy and
    run, and how their newest run ended; best first, users without a planned run last."""
    by_user: dict[str, list[Any]] = {}
    for run in runs:
        by_user.setdefault(run.user or NOBODY, []).append(run)
    rows = []
    for user, theirs in by_user.items():
        planned = [r for r in theirs if r.status == "succeeded" and r.predicted_makespan_s is not None]
        best = min(planned, key=lambda r: (r.predicted_makespan_s, r.created)) if planned else None
        newest = max(theirs, key=lambda r: r.created)
        rows.append({"user": user, "runs": len(theirs), "succeeded": sum(r.status == "succeeded" for r in theirs),
                     "best_planned_s": round(best.predicted_makespan_s, 3) if best else None,
                     "policy": best.policy if best else None, "best_run": best.id if best else None,
                     "last": newest.status})
    return sorted(rows, key=lambda r: (r["best_planned_s"] is None, r["best_planned_s"] or 0.0, r["user"]))


def class_chart(rows: list[dict[str, Any]]) -> alt.Chart:
    """Each user's best planned makespan, a bar each, coloured by the policy that gave it."""
    data = [r for r in rows if r["best_planned_s"] is not None]
    return alt.Chart(alt.Data(values=data)).mark_bar().encode(
        x=alt.X("best_planned_s:Q", title="best planned makespan (s, time scale 1)"),
        y=alt.Y("user:N", sort=None, title=None),
        color=alt.Color("policy:N", title="policy"),
        tooltip=["user:N", "best_planned_s:Q", "policy:N", "runs:Q", "best_run:N"],
    ).properties(height=max(60, 26 * len(data)))


def render_class_view(runs: Sequence[Any], workflow: str) -> None:
    """The class comparison of ``workflow``'s runs, when they come from more than one user."""
    rows = class_rows([r for r in runs if r.workflow_name == workflow])
    if len({r["user"] for r in rows}) < 2:
        return
    with st.expander(f"Class: {len(rows)} people ran {escape_md(workflow)}", expanded=True, icon=":material/groups:"):
        st.caption("Each person's best succeeded run, by the makespan its plan gave at time scale 1 (their "
                   "policy and capacity for the same task), whatever time scale they ran at.")
        if any(r["best_planned_s"] is not None for r in rows):
            st.altair_chart(class_chart(rows), width="stretch")
        st.dataframe(rows, hide_index=True, width="stretch", key="history.class", column_config={
            "best_planned_s": st.column_config.NumberColumn("best planned (s)", format="%.3f"),
            "best_run": "best run", "last": "last run"})
