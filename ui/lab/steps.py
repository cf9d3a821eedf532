"""Step mode (one scheduling decision at a time, with the ready set, free capacity and the
policy's choice explained) and "why did it wait?" for each node of a plan."""

from __future__ import annotations

from typing import Any

import streamlit as st

from engine.explain import Decision, Explanation, step_schedule, why_waited
from engine.problem import Problem
from ui.lab.compare import Comparison, signature
from ui.render import escape_md

K_STEP = "lab.step"  # {"sig": problem+policy signature, "index": int}
K_STEP_POLICY = "lab.step.policy"
K_WHY_PLAN = "lab.why.plan"
K_WHY_NODE = "lab.why.node"


@st.cache_data(show_spinner=False, max_entries=32)
def _decisions(sig: str, policy: str, _problem: Problem) -> list[Decision]:
    return step_schedule(_problem, policy)


def show_step_mode(cmp: Comparison) -> None:
    policies = [p for p in cmp.plans if p != "auto"] or ["critical_path"]
    policy = st.selectbox("Policy to step through", policies, key=K_STEP_POLICY)
    st.caption("These are the planner's decisions on its virtual clock. To walk a real run node by node, "
               "use **Step** in the designer or on the Run page (Start paused): each press starts the next "
               "ready node in the same policy order.")
    sig = signature(cmp.problem)
    decisions = _decisions(sig, policy, cmp.problem)
    state: dict[str, Any] = st.session_state.setdefault(K_STEP, {"sig": "", "index": 0})
    if state["sig"] != sig + policy:
        state.update(sig=sig + policy, index=0)
    cols = st.columns([1, 1, 4])
    if cols[0].button("Next decision", key="lab.step.next", icon=":material/skip_next:",
                      disabled=state["index"] >= len(decisions) - 1):
        state["index"] = min(len(decisions) - 1, state["index"] + 1)
    if cols[1].button("Reset", key="lab.step.reset", icon=":material/restart_alt:"):
        state["index"] = 0
    if not decisions:
        st.info("Nothing to schedule.")
        return
    d = decisions[state["index"]]
    cols[2].markdown(f"**Decision {d.index + 1} of {len(decisions)}** · {escape_md(d.summary())}")
    if d.finished:
        st.caption(f"Finished at {d.time:g} s: {escape_md(', '.join(d.finished))}")
    st.dataframe([{"rank": r.rank + 1, "ready node": r.id, "priority": r.priority,
                   "decision": f"start on {r.device}" if r.started else "wait", "why": r.reason} for r in d.ready],
                 hide_index=True, width="stretch")
    free = [{"resource": k, "free before": round(v, 3), "free after": round(d.free_after.get(k, 0.0), 3),
             "held by": ", ".join(d.running.get(k, []))} for k, v in d.free_before.items()]
    st.dataframe(free, hide_index=True, width="stretch")


WAIT_KINDS = {"none": "no wait", "input": "waited only for its inputs", "resource": "waited for a resource",
              "policy": "held back by the policy"}


def wait_text(e: Explanation) -> str:
    """The explanation in plain words; a node that did not wait says so instead of "at once"."""
    if e.kind != "none":
        return e.text
    if e.last_input:
        return f"started at {e.start:g} s, as soon as its inputs were ready"
    return f"started at {e.start:g} s, as soon as the run began (it has no inputs to wait for)"


def wait_label(node: str, e: Explanation | None) -> str:
    """A node as the wait picker lists it: ``merge · waited 4 s for memory_mb``."""
    if e is None or e.waited_s <= 0:
        return f"{node} · no wait"
    if e.kind == "policy":
        return f"{node} · held back {e.waited_s:,.3g} s by the policy"
    if e.kind == "resource":
        return f"{node} · waited {e.waited_s:,.3g} s for {e.resource or 'a resource'}"
    return f"{node} · waited {e.waited_s:,.3g} s"


def show_why_waited(cmp: Comparison) -> None:
    choices = list(cmp.plans) + (["optimum"] if cmp.optimum else [])
    cols = st.columns(2)
    which = cols[0].selectbox("Plan", choices, key=K_WHY_PLAN)
    source = cmp.optimum if which == "optimum" else cmp.plans[which]
    why = why_waited(cmp.problem, source)
    nodes = list(cmp.problem.tasks)
    # it opens on the node that waited longest (the one worth explaining), each option says its wait
    waited = {n: why[n].waited_s if n in why else 0.0 for n in nodes}
    node = cols[1].selectbox("Why did it wait? Node", nodes, key=K_WHY_NODE,
                             index=nodes.index(max(nodes, key=lambda n: waited[n])) if nodes else None,
                             format_func=lambda n: wait_label(n, why.get(n)))
    if node in why:
        e = why[node]
        icon = {"resource": ":material/memory:", "policy": ":material/low_priority:",
                "input": ":material/input:"}.get(e.kind, ":material/play_arrow:")
        st.info(f"**{escape_md(node)}** ({WAIT_KINDS.get(e.kind, e.kind)}): {escape_md(wait_text(e))}", icon=icon)
    with st.expander("Every node's wait", expanded=False):
        st.dataframe([{"node": e.node, "reason": WAIT_KINDS.get(e.kind, e.kind), "ready at": e.ready_at, "start": e.start,
                       "waited s": round(e.waited_s, 3), "last input": e.last_input or "", "resource": e.resource or "",
                       "held by": ", ".join(e.held_by), "preferred": ", ".join(e.preferred)} for e in why.values()],
                     hide_index=True, width="stretch")
