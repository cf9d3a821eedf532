"""The Scheduling Lab page: pick a workflow and capacities, compare the policies' plans with the
bounds and the optimum, try what-ifs, step through decisions, ask why a node waited, and see
what the engine learned from past runs."""

from __future__ import annotations

import streamlit as st

from engine.components import flatten
from engine.errors import ServiceGridError, WorkflowInvalidError
from engine.policies import POLICIES, POLICY_HELP
from engine.problem import problem_from_workflow
from ui.lab.compare import compare, show_comparison, show_graph
from ui.lab.learned import learned_durations, show_learned
from ui.lab.sources import pick_workflow
from ui.lab.steps import show_step_mode, show_why_waited
from ui.lab.whatif import apply_edits, capacity_inputs, whatif_inputs
from ui.render import show_error
from ui.services import get_capacity, get_registry, get_store

K_POLICIES = "lab.policies"
K_VIEW = "lab.view"
VIEWS = ("Compare", "Graph", "Step mode", "Why did it wait?", "Learned estimates")
DEFAULT_POLICIES = ["fifo", "smallest_demand", "critical_path"]


def render_lab_page() -> None:
    st.markdown("### Scheduling Lab")  # the same heading level as the other pages
    st.caption("Why is a schedule what it is? Compare policies against the lower bounds and the optimum, "
               "change capacities and demands, and step through the planner's decisions.")
    registry, store = get_registry(), get_store()
    picked = pick_workflow(store)
    if picked is None:
        return
    try:
        workflow = flatten(picked.workflow)  # a component's nodes are planned (and explained) one by one
    except WorkflowInvalidError as exc:
        show_error("Cannot plan this workflow", exc)
        return
    if not workflow.nodes:
        st.info("This workflow has no nodes yet.")
        return
    st.markdown("**Capacity**")
    capacity = capacity_inputs(workflow, registry, get_capacity(), picked.key)
    if capacity is None:
        return
    edits = whatif_inputs(workflow, registry, picked.key)
    est, runs, learned = learned_durations(store, registry, workflow, picked.workflow_id)
    policies = st.multiselect("Policies", list(POLICIES), default=DEFAULT_POLICIES, key=K_POLICIES,
                              help="; ".join(f"{p}: {h}" for p, h in POLICY_HELP.items()))
    if not policies:
        st.info("Pick at least one policy.")
        return
    scenario = apply_edits(workflow, capacity, edits, learned)
    try:
        problem = problem_from_workflow(scenario.workflow, registry, capacity, scenario.durations or None)
        cmp = compare(problem, policies)
    except (ServiceGridError, ValueError) as exc:
        show_error("Cannot plan this workflow", exc)
        return
    view = st.segmented_control("View", VIEWS, default=VIEWS[0], key=K_VIEW) or VIEWS[0]
    if view == "Compare":
        show_comparison(cmp)
    elif view == "Graph":
        show_graph(scenario.workflow, next(iter(cmp.plans.values())).critical_path)
    elif view == "Step mode":
        show_step_mode(cmp)
    elif view == "Why did it wait?":
        show_why_waited(cmp)
    else:
        show_learned(store, registry, workflow, picked.workflow_id, capacity, est, runs)
