"""The scheduling problem the planner solves: tasks with durations, demands and predecessors.

Built from a workflow (durations from the agents' declarations or learned estimates) or from an
imported benchmark instance; immutable, with a resolved capacity.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from engine.errors import CapacityError, WorkflowFileError
from engine.items import PlannedItems, node_demand, planned_items
from engine.registry import Registry
from engine.resources import Capacity, ResourceDemand, ResourceLedger
from engine.spec import AgentSpec
from engine.versions import runnable
from engine.workflow import NodeSpec, Workflow, pinned_only_feeders


@dataclass(frozen=True)
class Task:
    """One schedulable unit: a workflow node with its expected duration and demand."""

    id: str
    duration: float  # seconds
    demand: ResourceDemand
    preds: tuple[str, ...] = ()  # ids of tasks that must finish first


@dataclass(frozen=True)
class Problem:
    """Tasks (insertion order = file order) under one fully resolved capacity."""

    name: str
    tasks: dict[str, Task]
    capacity: Capacity
    _succs: dict[str, list[str]] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.capacity.cpu is None or self.capacity.memory_mb is None:
            raise CapacityError(
                f"problem {self.name!r} needs a resolved capacity (cpu and memory_mb set); "
                "call Capacity.resolved(machine_capacity()) first"
            )
        for task in self.tasks.values():
            for pred in task.preds:
                if pred not in self.tasks:
                    raise WorkflowFileError(
                        f"task {task.id!r} depends on {pred!r}, which is not a task of {self.name!r}",
                        hint="check the edge's source id",
                    )

    def succs(self) -> dict[str, list[str]]:
        """Immediate successors of every task (every id is a key)."""
        if not self._succs:
            out: dict[str, list[str]] = {tid: [] for tid in self.tasks}
            for task in self.tasks.values():
                for pred in task.preds:
                    out[pred].append(task.id)
            self._succs.update(out)
        return self._succs

    def topological_order(self) -> list[str]:
        """Task ids in a topological order, ties broken by file order (Kahn's algorithm).

        Raises:
            WorkflowFileError: the precedence graph has a cycle (names the tasks on it).
        """
        indeg = {tid: len(set(t.preds)) for tid, t in self.tasks.items()}
        succs = self.succs()
        position = {tid: i for i, tid in enumerate(self.tasks)}
        heap = [(position[tid], tid) for tid, d in indeg.items() if d == 0]
        heapq.heapify(heap)
        order: list[str] = []
        while heap:
            _, tid = heapq.heappop(heap)
            order.append(tid)
            for succ in dict.fromkeys(succs[tid]):
                indeg[succ] -= 1
                if indeg[succ] == 0:
                    heapq.heappush(heap, (position[succ], succ))
        if len(order) < len(self.tasks):
            stuck = [tid for tid, d in indeg.items() if d > 0]
            raise WorkflowFileError(
                f"the dependencies form a cycle among {', '.join(map(repr, stuck[:6]))}"
                + (" ..." if len(stuck) > 6 else ""),
                hint="remove one edge of the cycle; a workflow must be a DAG",
            )
        return order

    def check_feasible(self) -> None:
        """Raise CapacityError for the first task whose demand can never fit the capacity."""
        ledger = ResourceLedger(self.capacity)
        for task in self.tasks.values():
            if task.duration <= 0 or ledger.could_ever_fit(task.demand):
                continue
            devices = ledger.candidate_devices(task.demand)
            if not devices:
                raise CapacityError(
                    f"task {task.id!r} needs a GPU (device=cuda) but the capacity has none; "
                    "declare one, e.g. `gpus=1,gpu_memory_mb=8000`, or set device to cpu/any"
                )
            key, amount, total = _worst_excess(ledger, task.demand, devices[0])
            raise CapacityError(
                f"task {task.id!r} needs {amount:g} of {key} but the capacity is {total:g}; "
                f"raise the capacity (e.g. `--capacity {key.split('.')[-1]}={amount:g}`) "
                "or lower the task's demand"
            )


def _worst_excess(ledger: ResourceLedger, demand: ResourceDemand, device: str) -> tuple[str, float, float]:
    for key, amount in ledger.needs(demand, device).items():
        total = ledger.total.get(key, 0.0)
        if amount > total:
            return key, amount, total
    return "capacity", 0.0, 0.0


def problem_from_workflow(
    workflow: Workflow,
    registry: Registry,
    capacity: Capacity,
    durations: Mapping[str, float] | None = None,
) -> Problem:
    """The scheduling problem of a workflow.

    Duration = ``durations[node]`` when given (learned estimates), else the agent's expected
    duration for the node's params and planned input items (``engine.items``); none for a pinned
    node (read from the result cache) and the nodes that only feed pinned ones (not run); demand = the
    agent's (with memory for the items it handles) merged with the node's overrides;
    predecessors from the edges; capacity = the workflow's, filled from ``capacity``.

    Raises:
        AgentNotFoundError: a node names an unknown agent.
        WorkflowFileError: bad params, an edge to an unknown node, or a cycle.
        WorkflowInvalidError: a broken component (``engine.components.flatten``).
        CapacityError: a bad resource override.
    """
    workflow = runnable(workflow, registry)  # upgraded params; a component's nodes one by one
    base = capacity
    if base.cpu is None or base.memory_mb is None:
        from engine.devices import machine_capacity

        base = base.resolved(machine_capacity())
    cap = (workflow.capacity or base).resolved(base)
    preds: dict[str, list[str]] = {n.id: [] for n in workflow.nodes}
    for i, edge in enumerate(workflow.edges):
        for end in (edge.source, edge.target):
            if end not in preds:
                raise WorkflowFileError(
                    f"edge {edge.source!r} -> {edge.target!r} names an unknown node {end!r}",
                    location=f"edges[{i}]",
                    hint="connect existing nodes only",
                )
        if edge.source not in preds[edge.target]:
            preds[edge.target].append(edge.source)
    if any(n.pin is not None for n in workflow.nodes):  # read or not run at all: no time
        free = pinned_only_feeders(workflow) | {n.id for n in workflow.nodes if n.pin is not None}
        durations = {**(durations or {}), **dict.fromkeys(free, 0.0)}
    tasks: dict[str, Task] = {}
    parsed: dict[tuple[str, str], BaseModel] = {}  # one parse per agent and params
    sized: PlannedItems | None = None  # computed once some agent's time or memory grows with items
    for i, node in enumerate(workflow.nodes):
        spec = registry.get(node.agent)
        key = (node.agent, node.params_key())
        if key not in parsed:
            parsed[key] = _params(spec, node.params, node, i)
        params = parsed[key]
        if sized is None and spec.grows_with_items:
            sized = planned_items(workflow, registry)
        if durations is not None and node.id in durations:
            duration = float(durations[node.id])
        else:
            duration = sized.duration(node.id, spec, params) if sized else spec.expected_duration(params)
        demand = node_demand(node, spec, params, sized)
        tasks[node.id] = Task(node.id, max(0.0, duration), demand, tuple(preds[node.id]))
    problem = Problem(workflow.name, tasks, cap)
    problem.topological_order()  # raise early on a cycle
    return problem


def _params(spec: AgentSpec, raw: Mapping[str, Any] | None, node: NodeSpec, index: int) -> BaseModel:
    try:
        return spec.parse_params(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise WorkflowFileError(
            f"node {node.id!r}: parameter {'.'.join(map(str, err['loc']))} {err['msg']}",
            location=f"nodes[{index}].params",
            hint=f"see the parameters of agent {node.agent!r} (`servicegrid agents`)",
        ) from None
