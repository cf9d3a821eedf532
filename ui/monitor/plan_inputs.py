"""What the start form's predicted plan rests on besides the form's fields: per-node durations
learned from the stored runs of the workflow (used once a node has enough runs), and the Ray
cluster's capacity once the user connects to it."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.errors import ServiceGridError
from engine.estimates import MIN_RUNS, Estimates, LearnedDurations
from engine.items import declared_durations, planned_items
from engine.registry import Registry
from engine.resources import Capacity
from engine.workflow import Workflow
from ui.lab.learned import load_runs
from ui.render import escape_md, show_error

RAY_CAPACITY = "launch.ray_capacity"  # session: the connected cluster's Capacity (as a dict)


def learned_durations(store: Any, registry: Registry, workflow: Workflow, workflow_id: str | None
                      ) -> LearnedDurations:
    """Learned durations of the workflow's nodes from its finished runs (the Lab's run query).

    Simulated agents' measurements are divided by each run's time scale (agent time unit)."""
    runs = load_runs(store, workflow_id, workflow.name)

    def simulated(name: str) -> bool:
        return name in registry and registry.get(name).simulated

    return Estimates.from_runs(reversed(runs), min_runs=MIN_RUNS, simulated=simulated,
                               registry=registry).durations_for(workflow)


def learned_rows(workflow: Workflow, registry: Registry, learned: LearnedDurations, use: bool
                 ) -> list[dict[str, Any]]:
    """One row per node: the duration the plan uses, where it comes from, and the items planned
    for it (what the declared time per item and the scaling of learned times count)."""
    rows = []
    sized = planned_items(workflow, registry)
    durations = declared_durations(workflow, registry, sized)
    for node in workflow.nodes:
        declared = durations.get(node.id)
        spec = registry.get(node.agent) if node.agent in registry else None
        uses_learned = use and node.id in learned.durations
        rows.append({"node": node.id, "agent": node.agent, "plan uses": learned.source[node.id] if uses_learned
                     else "declared", "duration (agent time, s)": learned.durations[node.id] if uses_learned
                     else declared, "declared (s)": declared, "items planned": sized.handled(node.id, spec),
                     "runs measured": learned.counts.get(node.id, 0)})
    return rows


def learned_panel(workflow: Workflow, registry: Registry, learned: LearnedDurations, key: str
                  ) -> dict[str, float] | None:
    """The "use learned estimates" checkbox and which duration each node's plan uses; returns the
    durations for the planner and the run (None: declared durations only)."""
    have = bool(learned.durations)
    use = st.checkbox("Use learned estimates", value=have, disabled=not have, key=f"{key}.learned.{workflow.name}",
                      help=f"Plan with each node's median measured duration once it has at least {MIN_RUNS} "
                           "finished runs, scaled to the items planned when its runs saw other sizes; "
                           "other nodes keep their declared duration.")
    use = use and have
    n_learned = len(learned.durations) if use else 0
    if use:
        st.caption(f"The plan uses learned estimates for {n_learned} of {len(workflow.nodes)} node(s); "
                   "the rest use their declared durations.")
    elif have:
        st.caption("The plan uses declared durations (learned estimates are switched off).")
    else:
        st.caption(f"The plan uses declared durations: no node has {MIN_RUNS} finished runs of this workflow yet.")
    with st.expander("Durations the plan uses", expanded=False):
        st.dataframe(learned_rows(workflow, registry, learned, use), hide_index=True, width="stretch")
    return dict(learned.durations) if use else None


def ray_capacity_panel(manager: Any, key: str) -> Capacity | None:
    """A "Connect to Ray" button (Ray never starts on page load); once connected, the cluster's
    capacity, which the predicted plan then uses as the machine."""
    saved = st.session_state.get(RAY_CAPACITY)
    cols = st.columns([1, 3], vertical_alignment="center")
    label = "Reconnect to Ray" if saved else "Connect to Ray"
    if cols[0].button(label, key=f"{key}.ray_connect", icon=":material/hub:",
                      help="Connects to $SERVICEGRID_RAY_ADDRESS, or starts a local Ray, and reads its capacity."):
        try:
            with st.spinner("Connecting to Ray…"):
                cap = manager.ray.capacity()
        except (ServiceGridError, ConnectionError, OSError, RuntimeError, TimeoutError) as exc:
            st.session_state.pop(RAY_CAPACITY, None)
            show_error("Could not connect to Ray", exc)
            return None
        saved = st.session_state[RAY_CAPACITY] = cap.model_dump(mode="json")
    if not saved:
        cols[1].caption("Not connected: the plan below uses this machine's capacity.")
        return None
    cap = Capacity.model_validate(saved)
    cols[1].markdown(f"**Ray cluster:** {escape_md(cap.describe())}")
    return cap
