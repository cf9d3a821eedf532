"""Vega-Lite specs of a run, authored with Altair: Gantt (actual over predicted, by device lane,
critical path marked), per-agent CPU, memory and GPU memory with capacity lines, utilisation.

Altair validates a spec against the Vega-Lite schema (tens of ms), so each chart's structure is
built and validated once (``lru_cache``) against *named* datasets; a live update only fills the
datasets with rows from ui.monitor.frames (≤ frames.MAX_POINTS points per chart). x is seconds since start.
Dense line charts carry no tooltips (Vega's hover handling per point is browser work on every
update); the Gantt keeps them.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import lru_cache
from typing import Any

import altair as alt

from ui.monitor import frames
from ui.monitor.view import RunView

Spec = dict[str, Any]
STATUS_COLORS: dict[str, str] = {
    "predicted": "#cbd5e1", "pending": "#e2e8f0", "queued": "#a5b4fc", "waiting_inputs": "#c4b5fd",
    "waiting_resource": "#fbbf24", "running": "#3b82f6", "done": "#22c55e", "cached": "#14b8a6",
    "failed": "#ef4444", "skipped": "#9ca3af", "cancelled": "#f97316", "interrupted": "#a855f7",
}
CRITICAL_COLOR = "#dc2626"
X_TITLE = "seconds since start"


def _named(name: str) -> alt.Chart:
    return alt.Chart(alt.NamedData(name=name))


def _rules(name: str) -> alt.LayerChart:
    rule = _named(name).mark_rule(color=CRITICAL_COLOR, strokeDash=[6, 4]).encode(
        y="value:Q")
    text = _named(name).mark_text(align="left", dx=4, dy=-6, color=CRITICAL_COLOR, fontSize=10).encode(
        y="value:Q", text="label:N", x=alt.value(0))
    return alt.layer(rule, text)


@lru_cache(maxsize=2)
def _gantt_template() -> Spec:
    y = alt.Y("row:N", sort=alt.EncodingSortField("rank", op="min"), title="device · node",
              axis=alt.Axis(labelLimit=220))
    x = alt.X("start:Q", title=X_TITLE, scale=alt.Scale(domainMin=0))
    tooltip = ["node:N", "agent:N", "lane:N", "kind:N", "status:N",
               alt.Tooltip("start:Q", format=".2f"), alt.Tooltip("end:Q", format=".2f")]
    base = _named("gantt").encode(y=y, x=x, x2="end:Q", tooltip=tooltip)
    predicted = base.transform_filter(alt.datum.kind == "predicted").mark_bar(
        height=16, opacity=0.55, color=STATUS_COLORS["predicted"]).encode(
        stroke=alt.condition(alt.datum.critical, alt.value(CRITICAL_COLOR), alt.value("#94a3b8")),
        strokeWidth=alt.condition(alt.datum.critical, alt.value(2), alt.value(0.5)))
    scale = alt.Scale(domain=list(STATUS_COLORS), range=list(STATUS_COLORS.values()))
    actual = base.transform_filter(alt.datum.kind == "actual").mark_bar(height=9).encode(
        color=alt.Color("status:N", scale=scale, title="status",
                        legend=alt.Legend(orient="bottom", direction="horizontal", columns=7)))
    now = _named("now").mark_rule(color="#0f172a", strokeDash=[4, 3]).encode(x="t:Q")
    paused = _named("paused").mark_rect(color="#fde68a", opacity=0.45).encode(
        x="start:Q", x2="end:Q", tooltip=[alt.Tooltip("why:N", title="paused by"),
                                          alt.Tooltip("start:Q", title="paused at", format=".2f"),
                                          alt.Tooltip("end:Q", title="resumed at", format=".2f")])
    chart = alt.layer(paused, predicted, actual, now).properties(
        height=alt.Step(24), title="Gantt: actual (thin, by status) over predicted (grey; critical path outlined red)")
    return chart.to_dict()


@lru_cache(maxsize=8)
def _cpu_template(legend: bool) -> Spec:
    # a sample is the CPU rate over the interval that ends at its time (engine.metrics.Sampler):
    # step-before draws it over that interval; points show a series of one sample (a short node)
    lines = _named("cpu").mark_line(interpolate="step-before", strokeWidth=1.5,
                                    point=alt.OverlayMarkDef(size=18)).encode(
        x=alt.X("t:Q", title=X_TITLE, scale=alt.Scale(domainMin=0)), y=alt.Y("cpu_percent:Q", title="CPU %"),
        color=alt.Color("node:N", legend=alt.Legend(columns=2) if legend else None))
    return alt.layer(lines, _rules("cpu_rules")).properties(
        height=220, title="CPU per agent (%; 100 = one thread busy)").to_dict()


@lru_cache(maxsize=2)
def _memory_template() -> Spec:
    lines = _named("memory").mark_line(interpolate="step-after").encode(
        x=alt.X("t:Q", title=X_TITLE, scale=alt.Scale(domainMin=0)), y=alt.Y("mb:Q", title="MB"),
        color=alt.Color("series:N", title="series"))
    return alt.layer(lines, _rules("memory_rules")).properties(
        height=220, title="Memory (MB): process RSS and GPU memory per device").to_dict()


@lru_cache(maxsize=2)
def _utilisation_template() -> Spec:
    lines = _named("utilisation").mark_line(interpolate="step-after").encode(
        x=alt.X("t:Q", title=X_TITLE, scale=alt.Scale(domainMin=0)),
        y=alt.Y("percent:Q", title="% of capacity", scale=alt.Scale(domain=[0, 110])),
        color=alt.Color("resource:N", title="resource"))
    rule = _named("full").mark_rule(color=CRITICAL_COLOR, strokeDash=[6, 4]).encode(y="value:Q")
    return alt.layer(lines, rule).properties(height=200, title="Reserved share of each resource (%)").to_dict()


@lru_cache(maxsize=2)
def _durations_template() -> Spec:
    chart = _named("durations").mark_bar().encode(
        y=alt.Y("node:N", title=None), yOffset="run:N", x=alt.X("wall_s:Q", title="wall seconds"),
        color=alt.Color("run:N", title="run"), tooltip=["node:N", "run:N", "wall_s:Q"])
    return chart.properties(title="Per-node durations").to_dict()


FIT_WIDTH = 840  # px for all the panels together: a faceted chart cannot stretch to its container
FIT_COLORS = {"above plan": CRITICAL_COLOR, "near plan": "#22c55e", "under half the plan": "#f59e0b"}


@lru_cache(maxsize=2)
def _fit_template() -> Spec:
    # one panel per measure, each on its own x scale: a bar of what was measured, a dark tick at
    # what was planned (or reserved) for it
    y = alt.Y("node:N", title=None, sort=alt.EncodingSortField("rank", op="min"), axis=alt.Axis(labelLimit=180))
    tooltip = ["node:N", "agent:N", "measure:N", alt.Tooltip("planned:Q", format=",.3g"),
               alt.Tooltip("measured:Q", format=",.3g"), alt.Tooltip("ratio:Q", format=".0%", title="measured/planned"),
               "verdict:N", "note:N"]
    scale = alt.Scale(domain=list(FIT_COLORS), range=list(FIT_COLORS.values()))
    bars = alt.Chart().mark_bar(height=12).encode(
        y=y, x=alt.X("measured:Q", title=None), tooltip=tooltip,
        color=alt.Color("verdict:N", scale=scale, title="measured",
                        legend=alt.Legend(orient="bottom", direction="horizontal")))
    ticks = alt.Chart().mark_tick(color="#0f172a", thickness=2, size=18).encode(
        y=y, x=alt.X("planned:Q", title=None), tooltip=tooltip)
    chart = alt.layer(bars, ticks, data=alt.NamedData(name="fit")).properties(width=FIT_WIDTH).facet(
        column=alt.Column("measure:N", title=None, sort=list(frames.FIT_MEASURES),
                          header=alt.Header(labelFontWeight="bold", labelFontSize=12)))
    return chart.resolve_scale(x="independent").properties(
        title="Planned vs measured per agent (bar: measured; dark tick: planned time, reserved memory)").to_dict()


def _fill(template: Spec, datasets: dict[str, list[dict[str, Any]]], **props: Any) -> Spec:
    spec = copy.copy(template)  # shallow: only top-level keys are replaced below
    spec["datasets"] = datasets
    spec.update(props)
    return spec


def gantt_spec(view: RunView) -> Spec:
    rows = frames.gantt_rows(view)
    order = frames.node_order(view)
    rank = {nid: i for i, nid in enumerate(order)}
    lane = {r["node"]: r["lane"] for r in rows if r["kind"] == "predicted"}
    lane.update({r["node"]: r["lane"] for r in rows if r["kind"] == "actual"})  # where it really ran
    for r in rows:
        r["row"] = f"{lane[r['node']]} · {r['node']}"  # one row per node: actual over predicted
        r["rank"] = rank.get(r["node"], len(rank))
    return _fill(_gantt_template(), {"gantt": rows, "now": [{"t": round(view.elapsed_s, 3)}],
                                     "paused": frames.pause_rows(view)})


def cpu_spec(view: RunView, max_points: int = frames.MAX_POINTS) -> Spec:
    rules = frames.capacity_rules(view)["cpu"]
    rows = frames.cpu_rows(view, max_points - len(rules))
    legend = len({r["node"] for r in rows}) <= 20
    return _fill(_cpu_template(legend), {"cpu": rows, "cpu_rules": rules})


def memory_spec(view: RunView, max_points: int = frames.MAX_POINTS) -> Spec:
    rules = frames.capacity_rules(view)["memory"]
    return _fill(_memory_template(), {"memory": frames.memory_rows(view, max_points - len(rules)),
                                      "memory_rules": rules})


def utilisation_spec(view: RunView) -> Spec:
    return _fill(_utilisation_template(), {"utilisation": frames.utilisation_rows(view), "full": [{"value": 100.0}]})


def durations_spec(per_node: list[dict[str, Any]]) -> Spec:
    """Grouped bars of per-node wall seconds, rows ``{node, run, wall_s}``."""
    height = max(120, 26 * len({r["node"] for r in per_node}))
    return _fill(_durations_template(), {"durations": per_node}, height=height)


def fit_spec(view: RunView) -> Spec:
    rows = frames.fit_rows(view)
    rank = {nid: i for i, nid in enumerate(frames.node_order(view))}
    for r in rows:
        r["rank"] = rank.get(r["node"], len(rank))
    template = _fit_template()
    panels = max(1, len({r["measure"] for r in rows}))
    return _fill(template, {"fit": rows}, spec={**template["spec"], "width": FIT_WIDTH // panels})


BUILDERS: dict[str, Callable[[RunView], Spec]] = {
    "gantt": gantt_spec, "cpu": cpu_spec, "memory": memory_spec, "utilisation": utilisation_spec, "fit": fit_spec}


def all_specs(view: RunView) -> dict[str, Spec]:
    """The monitor's charts by key (the page draws the Gantt and the open resource tab's chart)."""
    return {name: build(view) for name, build in BUILDERS.items()}


def point_count(spec: Spec) -> int:
    """Rows across a spec's datasets (what the browser draws)."""
    return sum(len(rows) for rows in spec.get("datasets", {}).values())
