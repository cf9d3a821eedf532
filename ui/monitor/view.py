"""RunView: one plain shape for a run, built from a live engine snapshot or from the Store.

Every monitor chart, table and report reads a RunView, so live runs and history share the views.
``states_at`` replays the state of every node at a moment of a finished run.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from engine.items import planned_items
from engine.metrics import own_memory_mb

TERMINAL_NODE = ("done", "cached", "failed", "skipped", "cancelled", "interrupted")
TERMINAL_RUN = ("succeeded", "failed", "cancelled", "interrupted")


@dataclass(frozen=True)
class RunView:
    """A run as the monitor draws it. Times are POSIX seconds; ``t0`` is the run's start."""

    run_id: str
    workflow_name: str
    status: str
    t0: float
    now: float
    nodes: dict[str, dict[str, Any]]
    samples: list[dict[str, Any]]
    plan: dict[str, Any] = field(default_factory=dict)
    capacity: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    progress: tuple[int, int] = (0, 0)
    eta_s: float | None = None
    error: str | None = None
    live: bool = False
    version: int = 0
    workflow: dict[str, Any] = field(default_factory=dict)
    resumed_from: str | None = None
    pauses: list[tuple[float, float | None, str]] = field(default_factory=list)  # (paused at, resumed at or None, why)

    @property
    def running(self) -> bool:
        return self.status not in TERMINAL_RUN

    @property
    def elapsed_s(self) -> float:
        return max(0.0, self.now - self.t0)

    @property
    def time_scale(self) -> float:
        try:
            return float(self.options.get("time_scale") or 1.0)
        except (TypeError, ValueError):
            return 1.0

    def node_ids(self) -> list[str]:
        return list(self.nodes)

    def focus_node(self) -> str | None:
        """The node a person most likely wants to see now: the first that failed; else the first
        running; else the run's result, the last finished node nothing reads from (a model's
        output before a sink's "written" row), else the last finished node."""
        ids = self.node_ids()
        for wanted in ("failed", "running"):
            if found := next((n for n in ids if self.nodes[n].get("status") == wanted), None):
                return found
        read = {str(e.get("source")) for e in self.workflow.get("edges") or [] if isinstance(e, dict)}
        finished = [n for n in ids if self.nodes[n].get("status") in ("done", "cached")]
        leaves = [n for n in finished if n not in read]
        results = [n for n in leaves if not str(self.nodes[n].get("agent", "")).startswith("flow.sink")]
        picks = results or leaves or finished or ids
        return picks[-1] if picks else None


def _error(error: Any) -> dict[str, str] | None:
    if not error:
        return None
    if isinstance(error, dict):
        return {"type": str(error.get("type") or "Error"), "message": str(error.get("message") or ""),
                "traceback": str(error.get("traceback") or "")}
    return {"type": "Error", "message": str(error), "traceback": ""}


def view_from_snapshot(snapshot: Any, now: float | None = None) -> RunView:
    """A RunView of an engine ``RunSnapshot`` (engine.runstate)."""
    now = time.time() if now is None else now
    t0 = snapshot.started_at or snapshot.created
    end = snapshot.finished_at if snapshot.finished_at else now
    nodes: dict[str, dict[str, Any]] = {}
    for nid, n in snapshot.nodes.items():
        metrics = dict(n.get("metrics") or {})
        nodes[nid] = {
            "status": n.get("status", "pending"), "agent": n.get("agent", ""), "device": n.get("device") or "",
            "attempts": int(n.get("attempts") or 0), "queued_at": n.get("queued_at"),
            "ready_at": n.get("ready_at"), "start": n.get("start"), "end": n.get("end"),
            "wait_inputs_s": metrics.get("wait_inputs_s"), "wait_resource_s": metrics.get("wait_resource_s"),
            "queue_s": metrics.get("queue_s"), "paused_s": metrics.get("paused_s"),
            "wall_s": metrics.get("wall_s"), "cpu_s": metrics.get("cpu_s"),
            "peak_rss_mb": n.get("peak_rss_mb"), "memory_mb": n.get("memory_mb"), "peak_gpu_mb": metrics.get("peak_gpu_mb"),
            "cpu_percent": n.get("cpu_percent"), "waiting_for": list(n.get("waiting_for") or []),
            "waiting_resource": n.get("waiting_resource"), "held_by": list(n.get("held_by") or []),
            "wait_resource": dict(metrics.get("wait_resource") or {}), "error": _error(n.get("error")),
            "logs": list(n.get("logs") or []), "output_summary": dict(n.get("output_summary") or {}),
            "metrics": metrics, "cached": bool(n.get("cached")), "demand": dict(n.get("demand") or {}),
            "progress": list(n.get("progress") or [0, None]), "reason": n.get("reason") or "",
            "fused_into": n.get("fused_into"), "chain": list(n.get("chain") or []),
        }
    samples = [{"time": s["time"], "cpu_percent": s.get("cpu_percent", 0.0), "rss_mb": s.get("rss_mb", 0.0),
                "per_node": s.get("per_node") or {}, "gpu": s.get("gpu_memory_mb") or {}}
               for s in snapshot.samples]
    return RunView(
        run_id=snapshot.run_id, workflow_name=snapshot.workflow_name, status=snapshot.status, t0=t0, now=end,
        nodes=nodes, samples=samples, plan=dict(snapshot.plan or {}), capacity=dict(snapshot.capacity or {}),
        options=dict(snapshot.options or {}), progress=tuple(snapshot.progress), eta_s=snapshot.eta_s,
        error=snapshot.error, live=True, version=snapshot.version, pauses=list(getattr(snapshot, "pauses", []) or []),
    )


def view_from_store(detail: Any, samples: list[Any] | None = None,
                    logs: dict[str, list[str]] | None = None,
                    pauses: list[tuple[float, float | None, str]] | None = None) -> RunView:
    """A RunView of a stored run (``storage.RunDetail``), its ``MetricSample`` list, what its
    nodes logged (``Store.node_logs``) and when it was paused (``engine.runstate.pauses_of`` its
    RunPaused / RunResumed events)."""
    s = detail.summary
    t0 = s.started or s.created
    ends = [n.finished_at for n in detail.nodes if n.finished_at]
    now = s.finished or max([*ends, t0])
    demands = _demands(detail.workflow)
    nodes: dict[str, dict[str, Any]] = {}
    for n in detail.nodes:
        metrics = dict(n.metrics or {})
        ready = None
        if n.started_at is not None:
            ready = n.started_at - float(n.wait_resource_s or 0.0) - float(metrics.get("queue_s") or 0.0)
        nodes[n.node_id] = {
            "status": n.status, "agent": n.agent, "device": n.device or "", "attempts": n.attempts,
            "queued_at": n.queued_at, "ready_at": ready, "start": n.started_at, "end": n.finished_at,
            "wait_inputs_s": n.wait_inputs_s, "wait_resource_s": n.wait_resource_s, "queue_s": metrics.get("queue_s"),
            "paused_s": metrics.get("paused_s"),
            "wall_s": n.wall_s, "cpu_s": n.cpu_s, "peak_rss_mb": n.peak_rss_mb, "peak_gpu_mb": n.peak_gpu_mb,
            "memory_mb": own_memory_mb(metrics, n.peak_rss_mb),
            "cpu_percent": None, "waiting_for": [], "waiting_resource": None, "held_by": [],
            "wait_resource": dict(n.wait_resource or {}),
            "error": _error({"type": n.error_type, "message": n.error_message, "traceback": n.traceback})
            if (n.error_type or n.error_message) else None,
            "logs": list((logs or {}).get(n.node_id) or []), "output_summary": dict(n.output_summary or {}),
            "metrics": metrics, "cached": bool(n.cached),
            "demand": dict(metrics["held"]) if metrics.get("held") else demands.get(n.node_id, {}),
            "held": bool(metrics.get("held")),  # the demand is what the node held (fused): keep it as is
            "progress": [0, None], "reason": "",
            "fused_into": metrics.get("fused_into"), "chain": list(metrics.get("chain") or []),
        }
    for nid in _workflow_ids(detail.workflow):  # nodes without a record never started
        nodes.setdefault(nid, _blank_node(detail.workflow, nid, demands))
    done = sum(1 for n in nodes.values() if n["status"] in ("done", "cached"))
    if s.status == "succeeded":  # its skipped nodes were left out on purpose (they only fed pinned nodes)
        done = len(nodes)
    rows = [{"time": m.time, "cpu_percent": m.cpu_percent, "rss_mb": m.rss_mb, "per_node": m.per_node or {},
             "gpu": m.gpu or {}} for m in (samples or [])]
    return RunView(
        run_id=s.id, workflow_name=s.workflow_name, status=s.status, t0=t0, now=now, nodes=nodes, samples=rows,
        plan=dict(detail.plan or {}), capacity=dict(detail.capacity or {}), options=dict(detail.options or {}),
        progress=(done, len(nodes)), eta_s=0.0, error=s.error, live=False, workflow=dict(detail.workflow or {}),
        resumed_from=s.resumed_from, pauses=list(pauses or []),
    )


def _workflow_ids(workflow: dict[str, Any] | None) -> list[str]:
    return [str(n["id"]) for n in (workflow or {}).get("nodes", []) if isinstance(n, dict) and "id" in n]


def _demands(workflow: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    return {str(n["id"]): dict(n.get("resources") or {})
            for n in (workflow or {}).get("nodes", []) if isinstance(n, dict) and "id" in n}


def _blank_node(workflow: dict[str, Any], nid: str, demands: dict[str, dict[str, Any]]) -> dict[str, Any]:
    agent = next((str(n.get("agent", "")) for n in workflow.get("nodes", []) if n.get("id") == nid), "")
    return {"status": "pending", "agent": agent, "device": "", "attempts": 0, "queued_at": None, "ready_at": None,
            "start": None, "end": None, "wait_inputs_s": None, "wait_resource_s": None, "queue_s": None, "paused_s": None,
            "wall_s": None, "cpu_s": None, "peak_rss_mb": None, "memory_mb": None, "peak_gpu_mb": None,
            "cpu_percent": None,
            "waiting_for": [], "waiting_resource": None, "held_by": [], "wait_resource": {}, "error": None,
            "logs": [], "output_summary": {}, "metrics": {}, "cached": False, "demand": demands.get(nid, {}),
            "progress": [0, None], "reason": ""}


def state_at(node: dict[str, Any], t: float) -> str:
    """The state a node was in at POSIX time ``t`` (replay), from its recorded times."""
    start, end, final = node.get("start"), node.get("end"), node.get("status", "pending")
    if end is not None and t >= end:
        return final
    if start is not None and t >= start:
        return "running"
    ready, queued = node.get("ready_at"), node.get("queued_at")
    if ready is not None and t >= ready:
        return "waiting_resource"
    if queued is not None and t >= queued:
        return "waiting_inputs"
    if final in ("cancelled", "skipped", "interrupted") and start is None and end is not None and t >= end:
        return final
    return "pending"


def states_at(view: RunView, t: float) -> dict[str, str]:
    """Every node's state at POSIX time ``t``."""
    return {nid: state_at(node, t) for nid, node in view.nodes.items()}


def wait_breakdown(node: dict[str, Any]) -> dict[str, float]:
    """Seconds a node waited for its inputs, for resources, in the queue, and held by a pause of
    its run (which the executor counts in its wait for admission; 0 where unknown)."""
    paused = float(node.get("paused_s") or 0.0)
    return {"inputs": float(node.get("wait_inputs_s") or 0.0),
            "resources": max(0.0, float(node.get("wait_resource_s") or 0.0) - paused),
            "queue": float(node.get("queue_s") or 0.0), "paused": paused}


def duration(node: dict[str, Any], now: float) -> float | None:
    """Wall seconds of a node so far (to ``now`` while it runs); None when it never started."""
    if node.get("start") is None:
        return None
    return max(0.0, (node.get("end") or now) - node["start"])


def replay_view(view: RunView, t: float) -> RunView:
    """``view`` as it was ``t`` seconds after its start: node states at that moment, bars cut there."""
    at = view.t0 + t
    nodes = {}
    for nid, n in view.nodes.items():
        status = state_at(n, at)
        start = n.get("start") if n.get("start") is not None and n["start"] <= at else None
        end = n.get("end") if n.get("end") is not None and n["end"] <= at else None
        nodes[nid] = {**n, "status": status, "start": start, "end": end,
                      "error": n.get("error") if status == "failed" else None}
    samples = [s for s in view.samples if s["time"] <= at]
    done = sum(1 for n in nodes.values() if n["status"] in ("done", "cached"))
    status = view.status if at >= view.now else "running"
    if status == "succeeded":  # as view_from_store counts a succeeded run: whole
        done = len(nodes)
    return RunView(run_id=view.run_id, workflow_name=view.workflow_name, status=status, t0=view.t0, now=at,
                   nodes=nodes, samples=samples, plan=view.plan, capacity=view.capacity, options=view.options,
                   progress=(done, len(nodes)), eta_s=None, error=view.error if at >= view.now else None,
                   live=False, version=view.version, workflow=view.workflow, resumed_from=view.resumed_from,
                   pauses=[p for p in view.pauses if p[0] <= at])


def fill_demands(view: RunView, registry: Any) -> RunView:
    """Give stored nodes their full resource demand, as the run reserved it: the agent's default,
    with the memory that grows with the items planned for the node, merged with its override."""
    try:
        sized = planned_items(view.workflow or {}, registry)
    except Exception:  # a stored workflow this build cannot read: no growth
        sized = None
    params = {str(n.get("id")): n.get("params") or {} for n in (view.workflow or {}).get("nodes", [])
              if isinstance(n, dict)}
    for node_id, node in view.nodes.items():
        if node.get("held"):
            continue  # a fused node: its demand is what it held, complete already
        try:
            spec = registry.get(node["agent"])
            parsed = spec.parse_params(params.get(node_id)) if spec.memory_grows else None
            overrides = node.get("demand") or None
            demand = sized.demand(node_id, spec, parsed, overrides) if sized is not None else \
                spec.demand_for(overrides, parsed)
            node["demand"] = demand.model_dump()
        except Exception:  # an agent no longer registered, or changed params: keep the stored override
            continue
    return view
