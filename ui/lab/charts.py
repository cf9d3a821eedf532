"""Lab charts (Altair): the plans of several policies stacked on one shared time axis, with the
lower bound and the optimum as rule lines and the critical path outlined; accuracy over runs.
"""

from __future__ import annotations

from typing import Any

import altair as alt
import pandas as pd

CRITICAL = "#dc2626"
BOUND = "#0f172a"
OPTIMUM = "#16a34a"
X_TITLE = "seconds (virtual clock)"
GANTT_WIDTH = 640


def gantt_rows(label: str, nodes: list[dict[str, Any]], critical: set[str], order: list[str]) -> list[dict[str, Any]]:
    rank = {nid: i for i, nid in enumerate(order)}
    return [{"plan": label, "node": n["id"], "start": n["start"], "end": n["end"], "device": n["device"],
             "critical": n["id"] in critical, "rank": rank.get(n["id"], len(rank)),
             "duration": n["end"] - n["start"]} for n in nodes if n["end"] > n["start"]]


def compare_gantt(plans: list[tuple[str, list[dict[str, Any]], float]], critical: set[str], order: list[str],
                  lower_bound: float, optimum: float | None) -> alt.VConcatChart:
    """One Gantt per plan (label, nodes, makespan), all on the same x scale."""
    top = max([m for _, _, m in plans] + [lower_bound, optimum or 0.0, 1e-9])
    scale = alt.Scale(domain=[0, top * 1.02], nice=False)
    charts = []
    height = max(60, 22 * len(order))
    for label, nodes, makespan in plans:
        data = pd.DataFrame(gantt_rows(label, nodes, critical, order))
        base = alt.Chart(data).encode(
            y=alt.Y("node:N", sort=alt.EncodingSortField("rank", op="min"), title=None,
                    axis=alt.Axis(labelLimit=160, labelOverlap=False)),
            x=alt.X("start:Q", scale=scale, title=X_TITLE), x2="end:Q",
            tooltip=["node:N", "device:N", alt.Tooltip("start:Q", format=".2f"), alt.Tooltip("end:Q", format=".2f"),
                     alt.Tooltip("duration:Q", format=".2f"), "critical:N"])
        bars = base.mark_bar(height=12).encode(
            color=alt.condition(alt.datum.critical, alt.value("#fca5a5"), alt.value("#93c5fd")),
            stroke=alt.condition(alt.datum.critical, alt.value(CRITICAL), alt.value("#1e3a8a")),
            strokeWidth=alt.condition(alt.datum.critical, alt.value(2), alt.value(0.5)))
        lines = [{"what": "lower bound", "t": lower_bound, "color": BOUND},
                 {"what": f"makespan {makespan:g}", "t": makespan, "color": "#2563eb"}]
        if optimum is not None:
            lines.append({"what": "optimum", "t": optimum, "color": OPTIMUM})
        rules = alt.Chart(pd.DataFrame(lines)).mark_rule(strokeDash=[6, 3], strokeWidth=2).encode(
            x=alt.X("t:Q", scale=scale), color=alt.Color("color:N", scale=None),
            tooltip=["what:N", alt.Tooltip("t:Q", format=".2f")])
        charts.append(alt.layer(bars, rules).properties(title=label, height=height, width=GANTT_WIDTH))
    return alt.vconcat(*charts).resolve_scale(x="shared")


def accuracy_chart(rows: list[dict[str, Any]]) -> alt.Chart:
    """Prediction error per run: stored plan (declarations) vs learned estimates."""
    data = pd.DataFrame(rows)
    return alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("run:Q", title="run (oldest first)"),
        y=alt.Y("error:Q", title="|predicted / actual - 1|", axis=alt.Axis(format="%")),
        color=alt.Color("prediction:N", title="prediction"),
        tooltip=["run:Q", "prediction:N", alt.Tooltip("error:Q", format=".1%")],
    ).properties(height=220, width="container")
