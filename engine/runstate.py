"""The in-memory state of a run and of its nodes, and the snapshot copied from it for the UI.

Owned by the executor and mutated only under its lock; ``RunSnapshot`` is a detached copy.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from engine.components import SEP
from engine.events import NodeStatus, RunStatus
from engine.metrics import memory_growth_mb
from engine.resources import Capacity, ResourceDemand, ResourceLedger
from engine.spec import AgentSpec, Lifecycle
from engine.workflow import BreakCondition, EdgeSpec, FaultSpec, Workflow

MAX_LOGS = 50
MAX_SAMPLES = 2000


class CancelFlag:
    """A cancel signal with ``threading.Event``'s interface whose Event is made only when someone
    waits (most nodes never wait: creating an Event per node was a measurable per-node cost)."""

    __slots__ = ("_event", "_flag")
    _make_lock = threading.Lock()

    def __init__(self) -> None:
        self._flag = False
        self._event: threading.Event | None = None

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True  # written before _event is read: a concurrent waiter sees one or the other
        if self._event is not None:
            self._event.set()

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        if self._event is None:
            with CancelFlag._make_lock:
                if self._event is None:
                    self._event = threading.Event()
        if self._flag:
            self._event.set()
        return self._event.wait(timeout)


@dataclass(eq=False, slots=True)  # slots: attribute access on the per-node path (41 fields) is ~2x faster
class NodeState:
    id: str
    spec: AgentSpec
    params: BaseModel
    params_json: str
    demand: ResourceDemand
    demand_dict: dict[str, Any]  # demand.model_dump(), shared by nodes with the same demand; read-only
    lifecycle: Lifecycle
    preds: list[str]
    succs: list[str]
    in_edges: list[EdgeSpec]
    prio: int = 0
    cache_key: str | None = None
    cache_hit: bool = False
    replace_cached: bool = False  # re-run on request: its result replaces the cached one
    pinned: bool = False  # takes its outputs from its pin (the result cache), waits for no input
    idle: bool = False  # feeds only pinned nodes, so it is never run (ends skipped at the start)
    status: NodeStatus = NodeStatus.PENDING
    unmet: int = 0
    admitted: bool = False
    device: str = ""
    need: dict[str, float] | None = None  # what admission took from the ledgers (given back at the end)
    attempts: int = 0
    threads: int = 1
    worker: str = ""
    native_id: int | None = None
    queued_at: float | None = None
    ready_at: float | None = None
    admitted_at: float | None = None
    start: float | None = None
    end: float | None = None
    wait_key: str | None = None
    wait_since: float = 0.0
    wait_resource: dict[str, float] = field(default_factory=dict)
    holders: tuple[str, ...] = ()
    error: dict[str, str] | None = None
    logs: deque[str] = field(default_factory=lambda: deque(maxlen=MAX_LOGS))
    metrics: dict[str, Any] = field(default_factory=dict)
    output_summary: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] | None = None
    cancel_event: CancelFlag | None = None  # made at admission, dropped when the node ends
    faults: FaultSpec | None = None  # a fault drill (engine.attempts applies it)
    peak_rss_mb: float | None = None
    mem_base_mb: float | None = None  # the process's RSS when it started (engine.metrics, memory_mb)
    mem_peak_mb: float = 0.0  # the highest RSS read while it ran
    output_bytes: int | None = None  # what its outputs hold (engine.payloads.payload_bytes), once it ended
    cpu_percent: float | None = None
    progress: tuple[int, int | None] = (0, None)
    progress_sent: float = float("-inf")  # monotonic time of the last NodeProgress event
    outputs_dropped: bool = False  # ``keep_outputs`` off: dropped once its consumers finished
    paused_s: float = 0.0  # of its wait for admission, the time its run was paused
    reason: str = ""
    chain: tuple[NodeState, ...] = ()  # fused chain head: the nodes that run inside it (engine.fusion)
    fused_into: str | None = None  # a fused node: the head of its chain
    own_demand: ResourceDemand | None = None  # fused chain head: its own demand (``demand`` is the chain's)
    routes: tuple[tuple[NodeState, str, bool, str | None], ...] = ()  # per in-edge (``set_routes``)

    @property
    def isolate(self) -> bool:
        return self.lifecycle.execution.isolate

    @property
    def start_rule(self) -> str:
        return self.lifecycle.start.inputs


def set_routes(nodes: dict[str, NodeState]) -> None:
    """Give every node its input routes, one per in-edge: (source node, target port, whether the
    port takes many values, source port or None for the whole output). Worked out once per
    (source agent, target agent, ports) when the run is built, not on every node's start."""
    memo: dict[tuple[int, int, str | None, str | None], tuple[str, bool, str | None]] = {}
    for ns in nodes.values():
        routes = []
        for edge in ns.in_edges:
            src = nodes[edge.source]
            key = (id(src.spec), id(ns.spec), edge.source_port, edge.target_port)
            route = memo.get(key)
            if route is None:
                source_port = edge.source_port if edge.source_port is not None else (
                    src.spec.outputs[0].name if src.spec.outputs else None)
                port_name = edge.target_port or (ns.spec.inputs[0].name if ns.spec.inputs else "in")
                port = ns.spec.input(port_name)
                route = memo[key] = (port_name, bool(port is not None and port.multiple), source_port)
            routes.append((src, *route))
        ns.routes = tuple(routes)


@dataclass(eq=False, slots=True)
class RunState:
    id: str
    workflow: Workflow
    options: Any  # engine.runs.RunOptions (kept untyped to avoid an import cycle)
    nodes: dict[str, NodeState]
    capacity: Capacity
    ledger: ResourceLedger
    plan: dict[str, Any] = field(default_factory=dict)
    status: RunStatus = RunStatus.PENDING
    created: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    ready: list[tuple[int, str]] = field(default_factory=list)
    running: set[str] = field(default_factory=set)
    done: int = 0
    version: int = 0
    min_cpu: float = 0.0
    cancel_requested: bool = False
    priority: int = 0  # among runs: higher is admitted first (RunOptions.priority, RunManager.set_priority)
    paused: bool = False  # admit no node (running ones go on) ...
    steps: int = 0  # ... except this many more (Step)
    pause_spans: list[list[Any]] = field(default_factory=list)  # [paused at, resumed at (inf: not yet), why (pause_label)]
    breakpoints: set[str] = field(default_factory=set)  # nodes the run pauses before (each once)
    paused_at: str | None = None  # the breakpoint it is paused at, if that paused it
    paused_why: str | None = None  # what that breakpoint's condition found ("confidence < 0.6 holds for 3 of 20 rows")
    break_when: dict[str, BreakCondition] = field(default_factory=dict)  # conditions of breakpoints (engine.breaks)
    amended: dict[str, list[str]] = field(default_factory=dict)  # settings changed during the run (engine.amend)
    held: dict[str, str] = field(default_factory=dict)  # failed nodes held for a retry (pause_on_failure): why each failed
    fail_fast_by: str | None = None
    error: str | None = None
    samples: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    devices: dict[int, tuple[ResourceDemand, list[tuple[str, dict[str, float]]]]] = field(default_factory=dict)  # memo: (device, need)
    finished: threading.Event = field(default_factory=threading.Event)
    output_bytes: int | None = None  # the nodes' outputs, once finished (RunManager's output budget)
    drop_consumed: bool = False  # some node does not keep its outputs (``execution.keep_outputs``)
    outputs_released: bool = False  # finished outputs dropped from memory to stay within that budget

    @property
    def total(self) -> int:
        return len(self.nodes)

    def mark_paused(self, now: float, at: str | None = None, why: str | None = None, failed: str | None = None) -> None:
        """Paused at ``now`` (``at``: before that node, its breakpoint, ``why``: what its condition
        found; ``failed``: that node failed, ``why`` its error): no step granted yet, a new pause
        span (the local executor and the Ray runner keep the same record)."""
        self.paused, self.steps, self.paused_at, self.version = True, 0, at, self.version + 1
        self.paused_why = why if at else None
        self.pause_spans.append([now, math.inf, pause_label(at, why, failed)])

    def mark_stepped(self, steps: int = 0) -> None:
        """A step granted while it stays paused (``steps`` more nodes for the local executor; the
        Ray runner's gate counts its own): it is no longer held at a breakpoint."""
        self.steps, self.paused_at, self.paused_why, self.version = self.steps + steps, None, None, self.version + 1

    def mark_resumed(self, now: float) -> None:
        """Not paused any more since ``now``: its open pause span ends there."""
        self.paused, self.steps, self.paused_at, self.version = False, 0, None, self.version + 1
        self.paused_why = None
        if self.pause_spans and self.pause_spans[-1][1] == math.inf:
            self.pause_spans[-1][1] = now


@dataclass(frozen=True)
class RunSnapshot:
    """A detached copy of a run's state (safe to read from any thread)."""

    run_id: str
    workflow_name: str
    status: str
    version: int
    created: float
    started_at: float | None
    finished_at: float | None
    progress: tuple[int, int]
    eta_s: float | None
    nodes: dict[str, dict[str, Any]]
    samples: list[dict[str, Any]]
    plan: dict[str, Any]
    capacity: dict[str, Any]
    options: dict[str, Any]
    error: str | None = None
    outputs_released: bool = False  # the nodes' outputs were dropped from memory (output budget)
    paused: bool = False  # admitting no new node (RunManager.pause); running ones go on
    priority: int = 0  # among runs: higher is admitted first
    pauses: list[tuple[float, float | None, str]] = field(default_factory=list)  # (paused at, resumed at or None, why)
    paused_at: str | None = None  # the node whose breakpoint paused it (while paused there)
    paused_why: str | None = None  # what that breakpoint's condition found, if it has one
    amended: dict[str, list[str]] = field(default_factory=dict)  # node -> settings changed during the run
    held: dict[str, str] = field(default_factory=dict)  # failed nodes the paused run holds for a retry: their error

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


PAUSE_EVENTS = ("RunPaused", "RunResumed")


HELD_LOG = ("failed: the run holds it and what follows it; fix its settings and retry it, or resume to skip what "
            "follows it")  # a node's log line when ``pause_on_failure`` holds it (local executor and Ray driver)
RETRIED_LOG = "retried by hand: a fresh start, with its retries"  # ... and when a person retries it


def failure_text(error: Mapping[str, Any] | None) -> str:
    """A failed node's error in one line ("RuntimeError: ..."): what a run that holds it says."""
    error = error or {}
    return f"{error.get('type') or 'Error'}: {error.get('message') or 'failed'}"[:500]


def held_together(at: str | None, ready: Iterable[str]) -> set[str]:
    """The breakpoints one pause at ``at`` uses up among the nodes ``ready`` then: its own, and
    those of the nodes inside the same component instance (a component's breakpoint is on each
    of its first nodes: one pause holds them all). The others stay: Resume pauses again before
    them, as a debugger stops at each breakpoint. A pause by a person, or at a failure, uses none."""
    if at is None:
        return set()
    instance = at.rsplit(SEP, 1)[0] + SEP if SEP in at else None
    return {at} | ({nid for nid in ready if nid.startswith(instance)} if instance else set())


def pause_label(at: str | None, why: str | None = None, failed: str | None = None) -> str:
    """Why a run paused, in words: "Pause" (a person), "breakpoint before route" (and what its
    condition found: "breakpoint before route: amount > 500 holds for 3 of 20 rows"), "route
    failed: ValueError: ..." (``pause_on_failure``)."""
    if failed is not None:
        return f"{failed} failed" + (f": {why}" if why else "")
    if at is None:
        return "Pause"
    return f"breakpoint before {at}" + (f": {why}" if why else "")


def pauses_of(events: Iterable[Any]) -> list[tuple[float, float | None, str]]:
    """(paused at, resumed at or None while still paused, why: ``pause_label``) from a run's
    RunPaused and RunResumed events, in time order (what a stored run's record gives back)."""
    spans: list[tuple[float, float | None, str]] = []
    for event in sorted(events, key=lambda e: e.time):
        if event.kind == "RunPaused" and (not spans or spans[-1][1] is not None):
            spans.append((event.time, None, pause_label(getattr(event, "at", None), getattr(event, "why", None),
                                                        getattr(event, "failed", None))))
        elif event.kind == "RunResumed" and spans and spans[-1][1] is None:
            spans[-1] = (spans[-1][0], event.time, spans[-1][2])
    return spans


def paused_between(run: RunState, start: float, end: float) -> float:
    """Seconds of [start, end] during which ``run`` was paused."""
    return sum(max(0.0, min(end, b) - max(start, a)) for a, b, _ in run.pause_spans)


def node_memory_so_far(ns: NodeState) -> float | None:
    """The node's own memory (``engine.metrics``): as measured when it ended, else its growth so
    far while it runs (None before it starts or when it was not measured)."""
    if "memory_mb" in ns.metrics:
        return ns.metrics["memory_mb"]
    if ns.status != NodeStatus.RUNNING or ns.fused_into:
        return None
    return memory_growth_mb(ns.mem_base_mb, ns.mem_peak_mb, 0)


def node_view(run: RunState, ns: NodeState, now: float) -> dict[str, Any]:
    """One node as the UI sees it (plain data)."""
    waiting_for = [p for p in ns.preds if run.nodes[p].status not in (NodeStatus.DONE, NodeStatus.CACHED)]
    return {
        "status": ns.status.value, "agent": ns.spec.name, "device": ns.device, "attempts": ns.attempts,
        "threads": ns.threads, "worker": ns.worker, "demand": dict(ns.demand_dict),
        "queued_at": ns.queued_at, "ready_at": ns.ready_at, "start": ns.start, "end": ns.end,
        "elapsed_s": (now - ns.start) if ns.start and ns.end is None else None,
        "waiting_for": waiting_for if ns.status == NodeStatus.WAITING_INPUTS else [],
        "waiting_resource": ns.wait_key if ns.status == NodeStatus.WAITING_RESOURCE else None,
        "held_by": list(ns.holders) if ns.status == NodeStatus.WAITING_RESOURCE else [],
        "metrics": dict(ns.metrics), "error": dict(ns.error) if ns.error else None,
        "logs": list(ns.logs), "output_summary": ns.output_summary, "progress": list(ns.progress),
        "cpu_percent": ns.cpu_percent, "peak_rss_mb": ns.peak_rss_mb, "memory_mb": node_memory_so_far(ns),
        "reason": ns.reason,
        "cached": ns.status == NodeStatus.CACHED, "pinned": ns.pinned,
        "prio": ns.prio,  # its rank in the policy's admission order (0 first)
        "fused_into": ns.fused_into, "chain": [c.id for c in ns.chain],
        "outputs_dropped": ns.outputs_dropped,
    }


def next_up(nodes: dict[str, dict[str, Any]]) -> list[str]:
    """The ready nodes of a snapshot in the order admission takes them (the next Step's first)."""
    ready = [nid for nid, n in nodes.items() if n["status"] in ("queued", "waiting_resource")]
    return sorted(ready, key=lambda nid: (nodes[nid].get("prio", 0), nid))


def make_snapshot(run: RunState) -> RunSnapshot:
    now = time.time()
    eta = None
    makespan = run.plan.get("makespan") if run.plan else None
    if run.status.is_terminal:
        eta = 0.0
    elif run.paused:  # it waits for a person, not for the plan
        eta = None
    elif makespan is not None and run.started_at is not None:
        scale = getattr(run.options, "time_scale", 1.0)
        eta = max(0.0, float(makespan) * scale - (now - run.started_at))
    return RunSnapshot(
        run_id=run.id, workflow_name=run.workflow.name, status=run.status.value, version=run.version,
        created=run.created, started_at=run.started_at, finished_at=run.finished_at,
        progress=(run.done, run.total), eta_s=eta,
        nodes={nid: node_view(run, ns, now) for nid, ns in run.nodes.items()},
        samples=list(run.samples), plan=run.plan, capacity=run.capacity.model_dump(mode="json"),
        options=run.options.to_dict() if hasattr(run.options, "to_dict") else {}, error=run.error,
        outputs_released=run.outputs_released, paused=run.paused and not run.status.is_terminal,
        priority=run.priority,
        pauses=[(a, b if b != math.inf else None, why) for a, b, why in run.pause_spans],
        paused_at=run.paused_at if run.paused and not run.status.is_terminal else None,
        paused_why=run.paused_why if run.paused and run.paused_at and not run.status.is_terminal else None,
        amended={nid: list(lines) for nid, lines in run.amended.items()},
        held=dict(run.held) if not run.status.is_terminal else {},
    )


# -- components of a run (engine.components) ----------------------------------------------


_SETTLED = ("done", "cached", "skipped")


def combined_state(states: list[str]) -> str:
    """One state for the nodes of a component: the first of failed, interrupted, cancelled,
    running, waiting_resource, waiting_inputs, queued and pending that one of them has; else
    cached when all were, skipped when all were, done."""
    for state in ("failed", "interrupted", "cancelled", "running", "waiting_resource"):
        if state in states:
            return state
    if not all(s in _SETTLED for s in states):
        return next((s for s in ("waiting_inputs", "queued", "pending") if s in states), states[0])
    return next((s for s in ("cached", "skipped") if all(x == s for x in states)), "done")


def component_rows(instances: Mapping[str, str], nodes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per component instance of a run (``instances``: the run's ``metadata.components``)
    from its nodes' rows (``node``, ``status``, and where known ``start``, ``end``, ``cpu_s``,
    ``memory_mb``): how many nodes, their combined state, when the first started and the last
    ended, that span, the time its nodes ran in all (busy: more than the span when they ran side
    by side), their CPU seconds, and the most memory one of them held. ComfyUI users asked for
    times per subgraph (Comfy-Org/ComfyUI#10963)."""
    inside: dict[str, list[Mapping[str, Any]]] = {}
    for row in nodes:  # each row under every instance its id's path passes through (a live view's hot path)
        parts = str(row.get("node", "")).split("/")
        for depth in range(1, len(parts)):
            if (inst := "/".join(parts[:depth])) in instances:
                inside.setdefault(inst, []).append(row)
    out = []
    for inst, name in instances.items():
        rows = inside.get(inst, [])
        starts = [r["start"] for r in rows if r.get("start") is not None]
        ends = [r["end"] for r in rows if r.get("end") is not None]
        busy = sum(r["end"] - r["start"] for r in rows if r.get("start") is not None and r.get("end") is not None)
        cpu = [r["cpu_s"] for r in rows if r.get("cpu_s") is not None]
        memory = [r["memory_mb"] for r in rows if r.get("memory_mb") is not None]
        out.append({"component": inst, "of": name, "nodes": len(rows),
                    "status": combined_state([str(r.get("status", "")) for r in rows]) if rows else "not run",
                    "start": min(starts) if starts else None, "end": max(ends) if ends and len(ends) == len(rows) else None,
                    "span_s": max(ends) - min(starts) if starts and ends and len(ends) == len(rows) else None,
                    "busy_s": busy if ends else None, "cpu_s": sum(cpu) if cpu else None,
                    "memory_mb": max(memory) if memory else None})
    return out
