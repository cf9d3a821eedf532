"""The driver's nodes of a run on Ray: each node's spec, demand, lifecycle, links and the Ray task
options its demand becomes; and why a demand cannot be placed on any node of the cluster.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.events import NodeStatus
from engine.graphs import topological_order
from engine.items import planned_items
from engine.registry import Registry
from engine.resources import Capacity, ResourceDemand
from engine.spec import AgentSpec, Lifecycle
from engine.workflow import BreakCondition, Workflow

LIVE_THRESHOLD_S = 0.5  # nodes expected to take longer run as streaming tasks (start seen live)


@dataclass(eq=False)
class RayNode:
    """The driver's view of one node of a run on Ray."""

    id: str
    spec: AgentSpec
    params: dict[str, Any]
    demand: ResourceDemand
    lifecycle: Lifecycle
    links: list[tuple[str, str, str, bool]]  # (target port, source port, source node, multiple)
    options: dict[str, Any]  # Ray task options (num_cpus, num_gpus, memory, resources)
    live: bool  # streaming task: the start is seen live (long or time-limited nodes)
    preds: list[str] = field(default_factory=list)
    succs: list[str] = field(default_factory=list)
    status: NodeStatus = NodeStatus.PENDING
    attempts: int = 0
    queued_at: float = 0.0
    ready_at: float = 0.0
    dispatched_at: float = 0.0
    start: dict[str, Any] | None = None
    deadline: float | None = None  # driver-side hard deadline (monotonic)
    stage: int = 0  # live tasks: 0 start, 1 report, 2 outputs
    key: Any = None  # what ray.wait follows: the report ref or the generator
    report: dict[str, Any] | None = None
    out_ref: Any = None
    cancel_reason: str | None = None
    cancel_at: float | None = None
    forced: bool = False
    job: dict[str, Any] | None = None  # the static part of the task's job (built at first submit)
    faults: dict[str, Any] | None = None  # a fault drill (engine.faults), applied in the worker
    order: int = 0  # position in a topological order (results are handled parents first)
    ended_at: float | None = None  # when the last attempt ended (worker clock)
    breakpoint: bool = False  # the run pauses before it (once); never handed to Ray ahead of its inputs
    break_when: BreakCondition | None = None  # ... only when this holds for its inputs (engine.breaks)

    @property
    def early_parent(self) -> bool:
        """Its children may be submitted before it ends: a plain task with no retries (its outputs
        ref is final at submission; a failure turns it into an error, so they never run)."""
        return not self.live and self.lifecycle.execution.retries == 0


@dataclass
class RunSettings:
    run_id: str
    time_scale: float = 1.0
    fail_fast: bool = False


def build_nodes(workflow: Workflow, registry: Registry, gpu_memory_mb: float,
                time_scale: float) -> dict[str, RayNode]:
    """The driver's nodes: spec, demand, lifecycle, resolved links and Ray task options."""
    nodes: dict[str, RayNode] = {}
    sized = planned_items(workflow, registry)
    for spec_node in workflow.nodes:
        spec = registry.get(spec_node.agent)
        params = spec.parse_params(spec_node.params)
        demand = sized.demand(spec_node.id, spec, params, spec_node.resources, spec_node.lifecycle)
        lifecycle = spec.lifecycle.merged(spec_node.lifecycle)
        expected = sized.duration(spec_node.id, spec, params) * (
            time_scale if spec.simulated else 1.0)
        live = lifecycle.execution.timeout_s is not None or expected >= LIVE_THRESHOLD_S
        nodes[spec_node.id] = RayNode(
            id=spec_node.id, spec=spec, params=params.model_dump(mode="json"), demand=demand,
            lifecycle=lifecycle, links=[], options=task_options(demand, gpu_memory_mb), live=live,
            faults=spec_node.faults.model_dump() if spec_node.faults else None, breakpoint=spec_node.breakpoint,
            break_when=spec_node.break_when if spec_node.breakpoint else None)
    for edge in workflow.edges:
        src, dst = nodes.get(edge.source), nodes.get(edge.target)
        if src is None or dst is None:
            continue
        source_port = edge.source_port or (src.spec.outputs[0].name if src.spec.outputs else "out")
        target_port = edge.target_port or (dst.spec.inputs[0].name if dst.spec.inputs else "in")
        port = dst.spec.input(target_port)
        dst.links.append((target_port, source_port, src.id, bool(port and port.multiple)))
        if src.id not in dst.preds:
            dst.preds.append(src.id)
            src.succs.append(dst.id)
    order = topological_order(list(nodes), [(e.source, e.target) for e in workflow.edges]) or list(nodes)
    for position, node_id in enumerate(order):
        nodes[node_id].order = position
    return nodes


def task_options(demand: ResourceDemand, gpu_memory_mb: float) -> dict[str, Any]:
    """Ray task options for a demand: num_cpus, memory (bytes), custom resources, num_gpus.

    A GPU share is ``gpu_memory_mb`` over the memory of the smallest GPU in the cluster (so the
    share is enough on every GPU); a ``cuda`` demand without GPU memory takes a whole GPU.
    """
    opts: dict[str, Any] = {"num_cpus": demand.cpu}
    if demand.memory_mb > 0:
        opts["memory"] = int(demand.memory_mb * 2**20)
    if demand.custom:
        opts["resources"] = dict(demand.custom)
    if gpu_memory_mb > 0 and demand.device in ("cuda", "any"):
        share = demand.gpu_memory_mb / gpu_memory_mb if demand.gpu_memory_mb > 0 else 1.0
        if share <= 1.0 or demand.device == "cuda":
            opts["num_gpus"] = max(0.0001, round(min(share, 1.0), 4))
    return opts


def unplaceable(node: RayNode, nodes: list[Capacity]) -> str | None:
    """Why no single Ray node can ever run ``node``, naming the resource (None when one can)."""
    demand = node.demand
    if any(_fits(demand, cap) for cap in nodes):
        return None
    most = {"cpu": max((c.cpu or 0 for c in nodes), default=0),
            "memory_mb": max((c.memory_mb or 0 for c in nodes), default=0),
            "gpu_memory_mb": max((g.memory_mb for c in nodes for g in c.gpus or ()), default=0)}
    for key in demand.custom:
        most[key] = max((c.custom.get(key, 0) for c in nodes), default=0)
    wanted = {**{k: v for k, v in demand.amounts().items() if k != "gpu_memory_mb"},
              **({"gpu_memory_mb": demand.gpu_memory_mb} if demand.device == "cuda" else {})}
    short = [f"{k} {v:g} (largest Ray node: {most.get(k, 0):g})" for k, v in wanted.items()
             if v > most.get(k, 0) + 1e-9]
    if demand.device == "cuda" and not most["gpu_memory_mb"]:
        short.append("a GPU (the Ray cluster has none)")
    what = ", ".join(short) or f"{demand.amounts()} at once on one node"
    return (f"node {node.id!r} needs {what}, which no node of the Ray cluster can hold; "
            "lower the node's `resources` or add a larger Ray node")


def _fits(demand: ResourceDemand, cap: Capacity) -> bool:
    fits = (demand.cpu <= (cap.cpu or 0) + 1e-9 and demand.memory_mb <= (cap.memory_mb or 0) + 1e-9
            and all(v <= cap.custom.get(k, 0) + 1e-9 for k, v in demand.custom.items()))
    if demand.device == "cuda":
        fits = fits and any(demand.gpu_memory_mb <= g.memory_mb for g in cap.gpus or ())
    return fits


def worker_label(start: dict[str, Any]) -> str:
    """``<short Ray node id>/<worker pid>``, as NodeStarted.worker."""
    return f"{str(start.get('ray_node_id', ''))[:8]}/{start.get('ray_worker_pid', '')}"
