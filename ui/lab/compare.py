"""Policies side by side: plans, the CP-SAT optimum for small problems, the metrics table, the
shared-axis Gantt and the read-only graph with the critical path highlighted."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

import streamlit as st

from engine.errors import ServiceGridError
from engine.optimal import MAX_NODES, OptimalResult, optimal_schedule
from engine.planner import Plan, plan
from engine.problem import Problem
from engine.workflow import Workflow
from ui.lab.charts import compare_gantt
from ui.render import show_error

OPTIMUM_TIME_LIMIT_S = 5.0
AUTO_BUDGET_S = 0.5


@dataclass
class Comparison:
    problem: Problem
    plans: dict[str, Plan]
    optimum: OptimalResult | None
    optimum_note: str = ""


def plan_nodes(p: Plan) -> list[dict[str, Any]]:
    return [{"id": n.id, "start": n.start, "end": n.end, "device": n.device} for n in p.nodes]


@st.cache_data(show_spinner=False, max_entries=64)
def _optimum(signature: str, _problem: Problem) -> OptimalResult:
    return optimal_schedule(_problem, time_limit_s=OPTIMUM_TIME_LIMIT_S)


def signature(problem: Problem) -> str:
    tasks = [(t.id, t.duration, t.demand.model_dump_json(), t.preds) for t in problem.tasks.values()]
    return repr((problem.capacity.model_dump_json(), tasks))


def compare(problem: Problem, policies: list[str]) -> Comparison:
    plans = {p: plan(problem, p, budget_s=AUTO_BUDGET_S, max_schedules=2000) for p in policies}
    n_real = sum(1 for t in problem.tasks.values() if t.duration > 0)
    if n_real > MAX_NODES:
        return Comparison(problem, plans, None, f"{n_real} tasks: the exact optimum is computed for up to {MAX_NODES}")
    try:
        with st.spinner("Computing the optimal schedule (CP-SAT)..."):
            result = _optimum(signature(problem), problem)
    except (ServiceGridError, ImportError) as exc:
        return Comparison(problem, plans, None, str(exc))
    note = "" if result.proven else f"CP-SAT stopped after {OPTIMUM_TIME_LIMIT_S:g} s: best found, not proven"
    return Comparison(problem, plans, result if result.makespan is not None else None, note)


def metrics_rows(cmp: Comparison) -> list[dict[str, Any]]:
    rows = []
    opt = cmp.optimum.makespan if cmp.optimum else None
    for name, p in cmp.plans.items():
        util = {k.split(".")[-1]: v for k, v in p.utilisation.items() if v > 0}
        rows.append({
            "policy": name, "makespan_s": round(p.makespan, 3), "lower_bound_s": round(p.lower_bound, 3),
            "gap_to_bound": f"{p.gap:.1%}",
            "gap_to_optimum": f"{p.makespan / opt - 1:.1%}" if opt else "n/a",
            "utilisation": ", ".join(f"{k} {v:.0%}" for k, v in sorted(util.items())),
        })
    if cmp.optimum:
        rows.append({"policy": f"optimum ({cmp.optimum.status})", "makespan_s": round(cmp.optimum.makespan or 0, 3),
                     "lower_bound_s": round(cmp.optimum.lower_bound, 3), "gap_to_bound": "", "gap_to_optimum": "0.0%",
                     "utilisation": f"solved in {cmp.optimum.solve_s:.2f} s"})
    return rows


def show_comparison(cmp: Comparison) -> None:
    opt = cmp.optimum.makespan if cmp.optimum else None
    cols = st.columns(len(cmp.plans) + (1 if opt is not None else 0))
    for col, (name, p) in zip(cols, cmp.plans.items(), strict=False):
        gap = f"+{p.makespan / opt - 1:.1%} vs optimum" if opt else f"+{p.gap:.1%} vs bound"
        col.metric(name, f"{p.makespan:g} s", gap, delta_color="inverse" if p.makespan > (opt or p.lower_bound) + 1e-9
                   else "off")
    if opt is not None and cmp.optimum:
        cols[-1].metric(f"optimum ({cmp.optimum.status})", f"{opt:g} s",
                        help=f"CP-SAT, solved in {cmp.optimum.solve_s:.2f} s; lower bound {p.lower_bound:g} s")
    st.dataframe(metrics_rows(cmp), hide_index=True, width="stretch", column_config={
        "makespan_s": "makespan (s)", "lower_bound_s": "lower bound (s)", "gap_to_bound": "gap to bound",
        "gap_to_optimum": "gap to optimum"})
    if cmp.optimum_note:
        st.caption(cmp.optimum_note)
    first = next(iter(cmp.plans.values()))
    critical = set(first.critical_path)
    order = first.order()
    charts = [(f"{name}: makespan {p.makespan:g} s (gap to bound {p.gap:.1%})", plan_nodes(p), p.makespan)
              for name, p in cmp.plans.items()]
    if cmp.optimum and cmp.optimum.makespan is not None:
        charts.append((f"optimum (CP-SAT, {cmp.optimum.status}): {cmp.optimum.makespan:g} s", cmp.optimum.nodes,
                       cmp.optimum.makespan))
    st.caption("Red outline: the critical path (longest chain of durations). Dashed rules: lower bound (black), "
               "each plan's makespan (blue), the optimum (green).")
    st.altair_chart(compare_gantt(charts, critical, order, first.lower_bound,
                                  cmp.optimum.makespan if cmp.optimum else None), width="content")


def show_graph(workflow: Workflow, critical: list[str]) -> None:
    """Read-only view (fixed positions, physics off) with the critical path in red."""
    try:
        from streamlit_agraph import Config, Edge, Node, agraph
    except ImportError:
        st.caption("Install streamlit-agraph to see the graph.")
        return
    from ui.graphmodel import ensure_positions

    placed = ensure_positions(workflow)
    on_path = set(critical)
    path_edges = set(itertools.pairwise(critical))
    nodes = [Node(id=n.id, label=n.label or n.id, x=n.position.x if n.position else 0,
                  y=n.position.y if n.position else 0, size=14, shape="dot",
                  color="#dc2626" if n.id in on_path else "#60a5fa", physics=False)
             for n in placed.nodes]
    edges = [Edge(source=e.source, target=e.target, color="#dc2626" if (e.source, e.target) in path_edges else "#94a3b8",
                  width=3 if (e.source, e.target) in path_edges else 1) for e in placed.edges]
    config = Config(width="100%", height=420, directed=True, physics=False, hierarchical=False,
                    interaction={"dragNodes": False, "dragView": True, "zoomView": True})
    try:
        agraph(nodes=nodes, edges=edges, config=config)
    except Exception as exc:  # the component is optional: never take the page down with it
        show_error("The graph view failed", exc)
