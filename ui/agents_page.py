"""The Agents page: every registered agent with its ports, parameters, resource demand, expected
time, lifecycle rules, measured figures from stored runs and model card, grouped by category and
searchable."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.spec import AgentSpec
from storage import StorageError
from ui.figures import AgentFigures, describe_figures, measured_figures
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
    rows = [{"side": "in", "port": p.name, "kind": p.kind.value, "required": "yes" if p.required else "no",
             "many": "yes" if p.multiple else "no",
             "description": p.description} for p in spec.inputs]
    rows += [{"side": "out", "port": p.name, "kind": p.kind.value, "required": "", "many": "",
              "description": p.description} for p in spec.outputs]
    return rows


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
    for category, specs in registry.categories().items():
        shown = [s for s in specs if not q or q in f"{s.name} {s.label} {s.category} {s.description}".lower()]
        if not shown:
            continue
        st.markdown(f"#### {escape_md(category)}")
        for spec in shown:
            with st.expander(f"{spec.label or spec.name} · {spec.name} v{spec.version}"):
                _agent_details(spec, figures.get(spec.name))


def _agent_details(spec: AgentSpec, figures: AgentFigures | None = None) -> None:
    st.markdown(escape_md(spec.description))
    demand = spec.resources
    cols = st.columns(4)
    cols[0].metric("CPU threads", f"{demand.cpu:g}")
    cols[1].metric("Memory", f"{demand.memory_mb:,.0f} MB",
                   help=f"plus {spec.memory_growth_text()} for the items it handles" if spec.memory_growth_text() else None)
    cols[2].metric("GPU memory", f"{demand.gpu_memory_mb:,.0f} MB" if demand.gpu_memory_mb else "none")
    cols[3].metric("Expected time", f"{spec.expected_duration_s:g} s",
                   help="the declared time; plus this per item" if spec.per_item_s else None)
    if spec.per_item_s:
        st.caption(f"Plus {spec.per_item_s * 1000:g} ms per item it receives (the planner counts the "
                   "items the workflow's sources emit).")
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
