"""Right-sizing advice: compare each node's declared memory with what its runs measured, say how
many more copies would fit at once and what the makespan gains when re-planned; apply advice to
a workflow (a new Workflow with the node's resource override changed: the one-click apply).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from engine.components import defined_at, flatten
from engine.estimates import Estimates
from engine.items import planned_items
from engine.planner import plan as make_plan
from engine.problem import problem_from_workflow
from engine.registry import Registry
from engine.resources import Capacity, ResourceDemand
from engine.workflow import NodeSpec, Workflow

HEADROOM = 1.25  # suggested = p95 x headroom, rounded up to ROUND_MB
ROUND_MB = 64.0
WORTH = 0.8  # advise lowering only when the suggestion is below 80 % of the declaration


@dataclass(frozen=True)
class Advice:
    node: str
    agent: str
    resource: str  # "memory_mb"
    declared: float
    measured_p95: float
    suggested: float
    runs: int
    at_once_before: int  # copies of this node's demand that fit the capacity at once
    at_once_after: int
    makespan_before: float | None
    makespan_after: float | None
    text: str

    @property
    def gain_s(self) -> float | None:
        if self.makespan_before is None or self.makespan_after is None:
            return None
        return self.makespan_before - self.makespan_after


def predict_makespan(workflow: Workflow, registry: Registry, capacity: Capacity,
                     estimates: Estimates | None = None, policy: str = "critical_path") -> float:
    """The planned makespan, with learned durations where ``estimates`` has enough runs."""
    durations = estimates.durations_for(workflow).durations if estimates is not None else None
    problem = problem_from_workflow(workflow, registry, capacity, durations)
    return make_plan(problem, policy).makespan


def _copies(demand: ResourceDemand, cap: Capacity) -> int:
    limits = []
    if demand.cpu > 0 and cap.cpu:
        limits.append(math.floor(cap.cpu / demand.cpu + 1e-9))
    if demand.memory_mb > 0 and cap.memory_mb:
        limits.append(math.floor(cap.memory_mb / demand.memory_mb + 1e-9))
    for name, amount in demand.custom.items():
        if amount > 0:
            limits.append(math.floor(cap.custom.get(name, 0.0) / amount + 1e-9))
    return min(limits) if limits else 0


def advise(workflow: Workflow, registry: Registry, capacity: Capacity, estimates: Estimates,
           policy: str = "critical_path") -> list[Advice]:
    """Advice for every node whose measured p95 memory is well below (or above) its declaration."""
    workflow = flatten(workflow)  # advice is per node that runs: those inside components too
    base = capacity
    if base.cpu is None or base.memory_mb is None:
        from engine.devices import machine_capacity

        base = base.resolved(machine_capacity())
    cap = (workflow.capacity or base).resolved(base)
    try:
        before = predict_makespan(workflow, registry, capacity, estimates, policy)
    except Exception:  # an unplannable workflow still gets its memory advice
        before = None
    out: list[Advice] = []
    sized = planned_items(workflow, registry)
    for node in workflow.nodes:
        spec = registry.get(node.agent)
        params = spec.parse_params(node.params)
        images = sized.images(node.id)
        measured = estimates.memory_for(node, sized.items_in.get(node.id),
                                        lambda n, spec=spec, params=params, images=images:
                                        spec.demand_for(None, params, n, images=images).memory_mb, images)
        if measured is None:
            continue
        p95, how = measured
        demand = sized.demand(node.id, spec, params, node.resources, node.lifecycle)
        declared = demand.memory_mb
        suggested = max(ROUND_MB, math.ceil(p95 * HEADROOM / ROUND_MB) * ROUND_MB)
        if declared <= 0 or abs(suggested - declared) < ROUND_MB:
            continue
        lowering = suggested < declared * WORTH
        if not lowering and p95 <= declared:
            continue
        new_demand = demand.model_copy(update={"memory_mb": float(suggested)})
        at_before, at_after = _copies(demand, cap), _copies(new_demand, cap)
        after = None
        if before is not None:
            try:
                after = predict_makespan(apply_advice(workflow, [(node.id, float(suggested))]), registry, capacity,
                                         estimates, policy)
            except Exception:
                after = None
        text = _text(node.id, declared, p95, float(suggested), at_before, at_after, before, after)
        out.append(Advice(node.id, node.agent, "memory_mb", declared, p95, float(suggested),
                          estimates.runs_of(node), at_before, at_after, before, after,
                          text + (f" (p95 {how})" if how else "")))
    return out


def _text(node: str, declared: float, p95: float, suggested: float, at_before: int, at_after: int,
          before: float | None, after: float | None) -> str:
    if suggested > declared:
        return (f"{node}: declared {declared:,.0f} MB, p95 measured {p95:,.0f} MB: raise it to {suggested:,.0f} MB "
                "so the scheduler does not over-commit memory")
    more = at_after - at_before
    lets = f"lets {more} more agent{'s' if more != 1 else ''} like it run at once" if more > 0 else \
        "frees memory for other nodes"
    gain = ""
    if before is not None and after is not None:
        gain = f"; predicted makespan {before:,.3g} s -> {after:,.3g} s"
    return (f"{node}: declared {declared:,.0f} MB, p95 measured {p95:,.0f} MB: lowering it to "
            f"{suggested:,.0f} MB {lets}{gain}")


def apply_advice(workflow: Workflow, advice: Iterable[Advice | tuple[str, float]]) -> Workflow:
    """A new workflow with each advised node's ``resources.memory_mb`` override set. Advice on a
    node inside a component (``c1/classify``, from a run of the expansion) is set on the
    component's node, which every instance runs: the largest advice of its instances."""
    changes: dict[str, float] = {}
    inside: dict[tuple[str, str], float] = {}
    for item in advice:
        node, value = (item.node, item.suggested) if isinstance(item, Advice) else item
        where = defined_at(workflow, node)
        if where is None:
            changes[node] = float(value)
        else:
            inside[where] = max(float(value), inside.get(where, 0.0))
    nodes = tuple(_with_memory(n, changes.get(n.id)) for n in workflow.nodes)
    components = tuple(c.model_copy(update={"nodes": tuple(_with_memory(n, inside.get((c.name, n.id)))
                                                           for n in c.nodes)})
                       for c in workflow.components)
    return workflow.model_copy(update={"nodes": nodes, "components": components})


def _with_memory(node: NodeSpec, memory_mb: float | None) -> NodeSpec:
    if memory_mb is None:
        return node
    return node.model_copy(update={"resources": {**node.resources, "memory_mb": memory_mb}})
