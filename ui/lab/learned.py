"""Learned estimates from the stored runs of a workflow: the statistics table, whether the plans
use them, predicted-vs-actual accuracy over runs, and right-sizing advice with an Apply button
that saves a new version of the workflow."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.errors import ServiceGridError
from engine.estimates import MIN_RUNS, Estimates, accuracy
from engine.registry import Registry
from engine.resources import Capacity
from engine.rightsizing import Advice, advise, apply_advice, predict_makespan
from engine.workflow import Workflow
from storage import StorageError, Store
from ui import auth
from ui.lab.charts import accuracy_chart
from ui.render import escape_md, show_error

MAX_RUNS = 50
K_USE = "lab.learned.use"
LEARNED_COLUMNS = {
    "runs": st.column_config.NumberColumn("runs", help="runs in which the node ran (cached nodes do not count)"),
    "samples": st.column_config.NumberColumn("samples", help="measured executions"),
    "duration_median_s": st.column_config.NumberColumn("median (s)", format="%.4f"),
    "duration_p95_s": st.column_config.NumberColumn("p95 (s)", format="%.4f"),
    "duration_mad_s": st.column_config.NumberColumn("MAD (s)", format="%.4f",
                                                    help="median absolute deviation: how much the runs vary"),
    "memory_median_mb": st.column_config.NumberColumn("memory median (MB)", format="%.1f"),
    "memory_p95_mb": st.column_config.NumberColumn("memory p95 (MB)", format="%.1f"),
    "used": st.column_config.CheckboxColumn("used", help=f"planned with the learned duration ({MIN_RUNS} runs or more)"),
    "planner uses": st.column_config.TextColumn("planner uses", width="large"),
}
K_FLASH = "lab.flash"


def load_runs(store: Store, workflow_id: str | None, name: str) -> list[Any]:
    """Finished runs of the workflow (by id, else by name), newest first, at most MAX_RUNS."""
    try:
        user = auth.owner_filter(auth.current_user())  # lab mode: a student learns from their own runs
        summaries = (store.list_runs(workflow=workflow_id, status="succeeded", user=user, limit=MAX_RUNS)
                     if workflow_id else [])
        summaries = summaries or store.list_runs(workflow=name, status="succeeded", user=user, limit=MAX_RUNS)
        return [d for d in (store.get_run(s.id) for s in summaries) if d is not None]
    except StorageError as exc:
        show_error("Could not read the run history", exc)
        return []


def _simulated(registry: Registry) -> Any:
    return lambda name: name in registry and registry.get(name).simulated


def learned_durations(store: Store, registry: Registry, workflow: Workflow, workflow_id: str | None
                      ) -> tuple[Estimates, list[Any], dict[str, float]]:
    """Estimates from the stored runs, the runs, and the durations to plan with (empty when off)."""
    runs = load_runs(store, workflow_id, workflow.name)
    est = Estimates.from_runs(reversed(runs), simulated=_simulated(registry), registry=registry)
    use = st.toggle(f"Plan with learned estimates (nodes with at least {MIN_RUNS} runs)", key=K_USE,
                    disabled=not runs)
    return est, runs, (est.durations_for(workflow).durations if use else {})


def show_learned(store: Store, registry: Registry, workflow: Workflow, workflow_id: str | None,
                 capacity: Capacity, est: Estimates, runs: list[Any]) -> None:
    if flash := st.session_state.pop(K_FLASH, None):
        st.success(flash)
    if not runs:
        st.info("No finished runs of this workflow yet. Run it a few times from the Run page, with **Reuse cached "
                "results** off so that every node runs, and the lab learns each agent's duration and memory from "
                "the measurements.")
        return
    learned = est.durations_for(workflow)
    rows = est.table(workflow)
    for row in rows:
        row["planner uses"] = learned.source[row["node"]]
    st.caption(f"Learned from {len(runs)} finished run(s). Memory is each node's own (how far it raised the "
               "process's); nodes fused into a chain are measured together and have none.")
    st.dataframe(rows, hide_index=True, width="stretch", column_config=LEARNED_COLUMNS, placeholder="—")
    _show_accuracy(registry, capacity, runs)
    _show_advice(store, registry, workflow, workflow_id, capacity, est)


def _show_accuracy(registry: Registry, capacity: Capacity, runs: list[Any]) -> None:
    def predict(wf: Workflow, est: Estimates, run: dict[str, Any]) -> float | None:
        try:
            cap = Capacity.model_validate(run.get("capacity") or {}) if run.get("capacity") else capacity
            return predict_makespan(wf, registry, cap, est, (run.get("summary") or {}).get("policy") or "critical_path")
        except (ServiceGridError, ValueError):
            return None

    points = accuracy(runs, predict, registry=registry)
    rows = []
    for i, p in enumerate(points, 1):
        if p.error_stored is not None:
            rows.append({"run": i, "prediction": "declared (stored plan)", "error": p.error_stored})
        if p.error_learned is not None:
            rows.append({"run": i, "prediction": "learned from earlier runs", "error": p.error_learned})
    if rows:
        st.markdown("**Predicted vs actual makespan**")
        st.altair_chart(accuracy_chart(rows), width="stretch")


def _show_advice(store: Store, registry: Registry, workflow: Workflow, workflow_id: str | None,
                 capacity: Capacity, est: Estimates) -> None:
    try:
        advice: list[Advice] = advise(workflow, registry, capacity, est)
    except (ServiceGridError, ValueError) as exc:
        show_error("Could not compute right-sizing advice", exc)
        return
    st.markdown("**Right-sizing advice**")
    if not advice:
        measured = sum(est.peak_memory_mb(node) is not None for node in workflow.nodes)
        if measured == len(workflow.nodes):
            st.caption("Every declaration is close to what was measured.")
        else:
            st.caption(f"{measured} of {len(workflow.nodes)} nodes have their own memory measured in {MIN_RUNS} or "
                       "more runs, and their declarations are close to it. Nodes fused into a chain are measured "
                       "together, not one by one (`servicegrid run --no-fuse`, or isolating a node, measures each).")
        return
    for a in advice:
        st.markdown(f"- {escape_md(a.text)}")
    if workflow_id is None:
        st.caption("Save the workflow to apply advice.")
        return
    if st.button("Apply advice (saves a new version)", key="lab.advice.apply", icon=":material/tune:"):
        try:
            drawn = store.get_workflow(workflow_id)  # as saved: advice inside a component goes into it
            _, version = store.save_workflow(apply_advice(drawn, advice), workflow_id=workflow_id,
                                             message="right-sizing from each node's measured memory")
        except (StorageError, ServiceGridError) as exc:
            show_error("Could not save the right-sized workflow", exc)
            return
        st.session_state[K_FLASH] = f"Saved version {version} with the advised memory demands."
        st.rerun()
