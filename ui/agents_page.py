"""The Agents page: the catalogue at a glance (one row per agent: ports, device, demand, declared
and measured time), a chart of declared against measured time (which declarations are off, and
how far), then every agent's details (ports, parameters, resource demand, expected time, lifecycle
rules, measured figures from stored runs and model card), grouped by category; all searchable."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import altair as alt
import streamlit as st

from engine.errors import shown_names
from engine.spec import AgentSpec
from storage import StorageError
from ui.figures import FASTER_BY, SLOWER_BY, AgentFigures, describe_figures, measured_figures
from ui.forms import schema_fields
from ui.render import escape_md, show_error
from ui.services import get_registry


def param_rows(spec: AgentSpec) -> list[dict[str, Any]]:
    """One row per parameter: name, type, default, allowed values or range, help."""
    rows = []
    for field in schema_fields(spec.params.model_json_schema()):
        if field.options:
            allowed = ", ".join(map(str, field.options))
        elif field.minimum is not None or field.maximum is not None:
            allowed = f"{'' if field.minimum is None else f'{field.minimum:g}'} … " \
                      f"{'' if field.maximum is None else f'{field.maximum:g}'}"
        else:
            allowed = ""
        rows.append({"parameter": field.name, "type": field.kind + (" (optional)" if field.optional else ""),
                     "default": "" if field.default is None else str(field.default), "allowed": allowed,
                     "help": field.help})
    return rows


def port_rows(spec: AgentSpec) -> list[dict[str, Any]]:
    """One row per port: its kind, and for its default parameters the columns an input needs and
    an output gives (as a table; where the agent declares them)."""
    def kind(p: Any) -> str:  # an `any` input that reads only some kinds says which
        return f"{p.kind.value} ({', '.join(k.value for k in p.accepts)})" if p.accepts else p.kind.value

    params = spec.default_params()
    gives = spec.emitted_columns(params, [None] * len(spec.inputs))
    def columns(names: Any) -> str:
        return shown_names(names or (), quoted=False)

    rows = [{"side": "in", "port": p.name, "kind": kind(p), "required": "yes" if p.required else "no",
             "many": "yes" if p.multiple else "no", "columns": columns(spec.needed_columns(params, p.name)),
             "description": p.description} for p in spec.inputs]
    rows += [{"side": "out", "port": p.name, "kind": p.kind.value, "required": "", "many": "",
              "columns": columns(gives.get(p.name) if isinstance(gives, dict) else gives),
              "description": p.description} for p in spec.outputs]
    return rows


def catalogue_rows(specs: Sequence[AgentSpec], figures: Mapping[str, AgentFigures]) -> list[dict[str, Any]]:
    """One row per agent for the table at the top: what it takes and gives, where it runs, what it
    asks for, what it declares and what it measured (median over the stored runs)."""
    rows = []
    for spec in specs:
        fig = figures.get(spec.name)
        demand = spec.resources
        growth = spec.memory_growth_text()
        rows.append({
            "agent": spec.label or spec.name, "name": spec.name, "category": spec.category,
            "takes": ", ".join(f"{p.name}: {p.kind.value}" for p in spec.inputs) or "(source)",
            "gives": ", ".join(f"{p.name}: {p.kind.value}" for p in spec.outputs) or "(sink)",
            "device": demand.device + (" (simulated)" if spec.simulated else ""),
            "cpu": demand.cpu, "memory_mb": demand.memory_mb + 0.0,
            "memory_grows": growth and f"+ {growth}",
            "gpu_mb": spec.demand_for(None, spec.default_params()).gpu_memory_mb or None,  # on a GPU, a typical batch
            "declared": spec.duration_text(),
            "measured_s": fig.wall.median if fig is not None else None,
            "ratio": fig.ratio.median if fig is not None and fig.ratio is not None else None,
            "executions": fig.executions if fig is not None else 0,
        })
    return rows


CATALOGUE_COLUMNS: dict[str, Any] = {
    "agent": st.column_config.TextColumn("agent", pinned=True),
    "name": st.column_config.TextColumn("name", help="the id a workflow file uses"),
    "takes": st.column_config.TextColumn("takes", help="input ports: name and kind of data"),
    "gives": st.column_config.TextColumn("gives", help="output ports: name and kind of data"),
    "cpu": st.column_config.NumberColumn("CPU threads", format="%g"),
    "memory_mb": st.column_config.NumberColumn("memory (MB)", format="%.0f", help="declared; see the next column"),
    "memory_grows": st.column_config.TextColumn("grows", help="memory the agent adds for each item it handles"),
    "gpu_mb": st.column_config.NumberColumn("GPU memory (MB)", format="%.0f"),
    "declared": st.column_config.TextColumn("declared time",
                                            help="for the default parameters: fixed part + per item"),
    "measured_s": st.column_config.NumberColumn("measured (s)", format="%.3g",
                                                help="median wall time over your stored runs"),
    "ratio": st.column_config.NumberColumn(
        "measured ÷ declared", format="×%.2g",
        help="median over executions, each against what was declared for its parameters and items; "
             f"from ×{SLOWER_BY:g} up, or ×{1 / FASTER_BY:g} and under, the declaration needs correcting"),
    "executions": st.column_config.NumberColumn("executions", help="finished, not cached, in your stored runs"),
}


# the times first (what this table is mostly read for), then the demand, then the ports
CATALOGUE_ORDER = ("agent", "name", "declared", "measured_s", "ratio", "executions", "device", "cpu", "memory_mb",
                   "memory_grows", "gpu_mb", "takes", "gives", "category")


VERDICTS = {"within": "holds", "slower": f"slower (×{SLOWER_BY:g} or more)",
            "faster": f"faster (×{1 / FASTER_BY:g} or less)"}
CHART_HEIGHT = 480  # the whole chart (Streamlit fits title, axes and legend into it)


def declared_vs_measured_spec(specs: Sequence[AgentSpec], figures: Mapping[str, AgentFigures]) -> dict[str, Any] | None:
    """A log-log scatter, one point per measured agent: the median declared time of its executions
    (x) against the median measured (y), over the line where they agree and the band where a
    declaration holds (``SLOWER_BY`` above it, ``FASTER_BY`` below). Agents outside the band are
    named. None when no agent has been measured against a declaration."""
    points = []
    for spec in specs:
        fig = figures.get(spec.name)
        if fig is None or fig.declared is None or fig.ratio is None or fig.verdict is None or fig.wall.median <= 0:
            continue
        points.append({"agent": spec.label or spec.name, "name": spec.name, "declared": fig.declared.median,
                       "measured": fig.wall.median, "ratio": fig.ratio.median, "executions": fig.executions,
                       "verdict": VERDICTS[fig.verdict], "off": fig.verdict != "within"})
    if not points:
        return None
    low = min(min(p["declared"], p["measured"]) for p in points) / 2
    high = max(max(p["declared"], p["measured"]) for p in points) * 2
    scale = alt.Scale(type="log", domain=[low, high])
    line = [{"declared": x, "measured": x * f, "band": band} for x in (low, high)
            for f, band in ((1.0, "agree"), (SLOWER_BY, "slower"), (1 / FASTER_BY, "faster"))]
    guides = alt.Chart(alt.Data(values=line)).mark_line(color="#94a3b8", clip=True).encode(
        x=alt.X("declared:Q", scale=scale), y=alt.Y("measured:Q", scale=scale), detail="band:N",
        strokeDash=alt.StrokeDash("band:N", legend=None, scale=alt.Scale(
            domain=["agree", "slower", "faster"], range=[[1, 0], [4, 4], [4, 4]])))
    axis = alt.Axis(format="~g", tickCount=6, grid=True)
    dots = alt.Chart(alt.Data(values=points)).mark_circle(size=90, opacity=0.85).encode(
        x=alt.X("declared:Q", title="declared time (s; median of its executions, for their parameters and items)",
                scale=scale, axis=axis),
        y=alt.Y("measured:Q", title="measured time (s, median)", scale=scale, axis=axis),
        color=alt.Color("verdict:N", title="the declaration", scale=alt.Scale(
            domain=list(VERDICTS.values()), range=["#2563eb", "#dc2626", "#d97706"]),
            legend=alt.Legend(orient="right")),
        tooltip=[alt.Tooltip("agent:N"), alt.Tooltip("name:N"), alt.Tooltip("declared:Q", format=".3g"),
                 alt.Tooltip("measured:Q", format=".3g"),
                 alt.Tooltip("ratio:Q", title="measured ÷ declared", format=".2g"), alt.Tooltip("executions:Q")])
    labels = dots.transform_filter("datum.off").mark_text(align="left", dx=7, fontSize=11).encode(
        text="name:N", color=alt.value("#475569"))
    return alt.layer(guides, dots, labels).properties(
        height=CHART_HEIGHT, title="Declared against measured time: agents outside the dashed band need a new declaration"
    ).to_dict()


def render_agents() -> None:
    registry = get_registry()
    st.markdown("### Agents")
    st.caption(f"{len(registry)} agents registered. Drag them from the Designer's palette onto the canvas.")
    query = st.text_input("Search agents", key="agents_search", placeholder="name, category or description")
    q = query.strip().lower()
    try:
        figures = measured_figures()
    except StorageError as exc:
        show_error("Could not read the measured figures from the run history", exc)
        figures = {}
    groups = {category: [s for s in specs if not q or q in f"{s.name} {s.label} {s.category} {s.description}".lower()]
              for category, specs in registry.categories().items()}
    shown = [spec for specs in groups.values() for spec in specs]
    if not shown:
        st.info("No agent matches this search: try a category (vision, text, tabular…) or part of a name.")
        return
    st.dataframe(catalogue_rows(shown, figures), hide_index=True, width="stretch", key="agents.catalogue",
                 column_config=CATALOGUE_COLUMNS, column_order=CATALOGUE_ORDER, placeholder="—")
    if (chart := declared_vs_measured_spec(shown, figures)) is not None:
        st.vega_lite_chart(spec=chart, width="stretch", height=CHART_HEIGHT, key="agents.declared_vs_measured")
        off = [s.name for s in shown if (f := figures.get(s.name)) is not None and f.verdict in ("slower", "faster")]
        st.caption(f"Each agent is compared with what it declared for the parameters and item counts of the runs it was "
                   f"in. A declaration holds from ×{1 / FASTER_BY:g} to ×{SLOWER_BY:g} of the measured time (declared "
                   "times are meant to be on the safe side, so a loaded machine still keeps to the plan). "
                   + (f"Outside: {', '.join(f'`{n}`' for n in off)} (each one's details say what to correct)."
                      if off else "Every measured agent is inside."))
    else:
        st.caption("Run a workflow and each agent's measured time appears here next to its declaration.")
    for category, specs in groups.items():
        if not specs:
            continue
        st.markdown(f"#### {escape_md(category)}")
        for spec in specs:
            with st.expander(f"{spec.label or spec.name} · {spec.name} v{spec.version}"):
                _agent_details(spec, figures.get(spec.name))


def _agent_details(spec: AgentSpec, figures: AgentFigures | None = None) -> None:
    st.markdown(escape_md(spec.description))
    if spec.migrations:  # how its parameters changed: saved workflows are upgraded (engine.versions)
        st.caption("Parameter changes: " + "; ".join(f"{escape_md(m.since)}: {escape_md(m.note)}"
                                                      for m in spec.migrations))
    demand = spec.resources
    cols = st.columns(4)
    cols[0].metric("CPU threads", f"{demand.cpu:g}")
    cols[1].metric("Memory", f"{demand.memory_mb:,.0f} MB",
                   help=f"plus {spec.memory_growth_text()} for the items it handles" if spec.memory_growth_text() else None)
    gpu_mb, gpu_text = spec.demand_for(None, spec.default_params()).gpu_memory_mb, spec.gpu_memory_text()
    cols[2].metric("GPU memory", f"{gpu_mb:,.0f} MB" if gpu_mb else "none",
                   help=f"on a GPU: {gpu_text} (measured on an H200: bench/gpu/memory.py); nothing on the CPU"
                   if gpu_text else None)
    per_item = spec.seconds_per_item(spec.default_params())
    cols[3].metric("Expected time", f"{spec.expected_duration(spec.default_params(), 0):.4g} s",
                   help="the declared time" + ("; plus the time per item below" if per_item else "")
                   + ("; for its default parameters: the time depends on them"
                      if spec.duration_fn or spec.per_item_fn else ""))
    if per_item:
        st.caption(f"Plus {per_item * 1000:.3g} ms per item it receives (the planner counts the "
                   "items the workflow's sources emit)"
                   + (", for its default parameters." if spec.per_item_fn else "."))
    if grows := spec.memory_growth_text():
        st.caption(f"Memory grows with its data: plus {grows} (a run reserves it for the items planned).")
    st.caption(f"Device: {demand.device}" + (" · simulated (no real work)" if spec.simulated else ""))
    st.markdown("**Measured**")
    st.markdown("\n".join(f"- {line}" for line in describe_figures(spec, figures)))
    st.markdown("**Ports**")
    if spec.inputs or spec.outputs:
        st.table(port_rows(spec))
    else:
        st.caption("no ports")
    params = param_rows(spec)
    st.markdown("**Parameters**")
    if params:
        st.table(params)
    else:
        st.caption("no parameters")
    execution = spec.lifecycle.execution
    st.caption(f"Lifecycle: starts when {spec.lifecycle.start.inputs} inputs are ready · retries {execution.retries}"
               f" · timeout {execution.timeout_s or 'none'} · batch size {execution.batch_size or 'all'}")
    if spec.card:
        with st.container(border=True):
            st.markdown("**Model card**")
            st.markdown(spec.card)
