"""One node's attempts: inputs in, the agent called through the backend with retries, backoff,
timeout and cancel, errors described at the agent boundary, results cached, metrics measured.

Used by the executor's worker threads, outside the executor lock.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from engine.backends import Backend, NodeCall
from engine.errors import AgentExecutionError, AgentTimeoutError, RunCancelledError
from engine.events import EventBus, NodeLog, NodeProgress, NodeRetried, NodeStatus
from engine.faults import before_attempt, held_memory
from engine.metrics import FRESH_READ_BYTES, FRESH_READ_S, GpuProbe, memory_growth_mb, rss_last_mb, rss_now_mb
from engine.payloads import payload_bytes
from engine.results import ResultStore, UnserializableError
from engine.runstate import NodeState, RunState
from engine.spec import RunContext

_DONE = (NodeStatus.DONE, NodeStatus.CACHED)
PROGRESS_EVERY_S = 0.05  # NodeProgress events per node at most this often (the first and last always)
_new = object.__new__
_monotonic = time.monotonic


class NodeRunner:
    """Runs attempts of nodes; shares the executor's bus, backend, result store and GPU probe."""

    def __init__(self, bus: EventBus, backend: Backend, results: ResultStore, gpu: GpuProbe,
                 rss: Callable[[], float | None]) -> None:
        self.bus = bus
        self.backend = backend
        self.results = results
        self.gpu = gpu
        self.rss = rss

    def attempts(self, run: RunState, ns: NodeState) -> tuple[NodeStatus, Any, dict | None, RunContext | None, dict]:
        ex, stats = ns.lifecycle.execution, {}
        isolate = ex.isolate
        inputs = self.gather_inputs(run, ns) if ns.routes else {}
        ctx = None
        for attempt in range(1, ex.retries + 2):
            ns.attempts = attempt
            ctx = self.context(run, ns)
            stats = {}
            held = None
            try:
                if ns.faults is not None:  # a fault drill: this attempt fails, or starts late, or holds more
                    before_attempt(ns.faults, attempt, ctx)
                    held = None if isolate else held_memory(ns.faults.extra_memory_mb)
                    if held is not None and (mb := rss_now_mb()) > ns.mem_peak_mb:  # measured as the node's
                        ns.mem_peak_mb = mb
                outputs = self.backend.call(NodeCall(  # positional: the fields in order
                    ns.spec, ns.params, ns.params_json, inputs, ctx, ns.demand.memory_mb, isolate,
                    self.results.scratch_dir() if isolate else None, stats,
                    ns.faults.extra_memory_mb if ns.faults is not None and isolate else 0.0))
                if ex.timeout_s is not None and ctx.deadline is not None and time.monotonic() > ctx.deadline:
                    raise AgentTimeoutError(f"node {ns.id!r} ran past its timeout of {ex.timeout_s:g} s")
                return NodeStatus.DONE, outputs, None, ctx, stats
            except RunCancelledError:
                return NodeStatus.CANCELLED, None, None, ctx, stats
            except BaseException as exc:
                if ns.cancel_event.is_set():
                    return NodeStatus.CANCELLED, None, None, ctx, stats
                error = self.describe_error(ns, exc, attempt, ex.timeout_s)
                if attempt > ex.retries:
                    return NodeStatus.FAILED, None, error, ctx, stats
                delay = ex.backoff_s * ex.backoff_factor ** (attempt - 1)
                self.bus.emit(NodeRetried(run_id=run.id, node_id=ns.id, attempt=attempt,
                                          error_type=error["type"], message=error["message"], delay_s=delay))
                held = None  # a drill's memory is not held through the backoff
                if ns.cancel_event.wait(delay):
                    return NodeStatus.CANCELLED, None, None, ctx, stats
        raise AssertionError("unreachable")  # pragma: no cover

    @staticmethod
    def describe_error(ns: NodeState, exc: BaseException, attempt: int, timeout_s: float | None) -> dict[str, str]:
        if isinstance(exc, AgentTimeoutError):
            limit = f" of {timeout_s:g} s" if timeout_s else ""
            return {"type": "AgentTimeoutError", "traceback": "",
                    "message": f"node {ns.id!r} (agent {ns.spec.name!r}) timed out: ran past its timeout{limit} "
                               f"on attempt {attempt}; raise lifecycle.execution.timeout_s or make it faster"}
        remote_type = getattr(exc, "error_type", None)
        tb = getattr(exc, "remote_traceback", "") or "".join(traceback.format_exception(exc))
        wrapped = AgentExecutionError(ns.id, ns.spec.name, exc)
        message = str(wrapped)
        if remote_type and remote_type != type(exc).__name__:
            message = f"node {ns.id!r} (agent {ns.spec.name!r}) failed: {remote_type}: {exc}"
        return {"type": remote_type or type(exc).__name__, "message": message, "traceback": tb}

    def context(self, run: RunState, ns: NodeState) -> RunContext:
        """The attempt's RunContext, built without ``RunContext.__init__`` (its keyword handling
        was a measurable per-node cost): the same attributes, in the same state, as
        ``RunContext(...)`` with these arguments (tests/executor/test_executor_fast_paths.py)."""
        lifecycle = ns.lifecycle
        timeout_s, time_limit_s = lifecycle.execution.timeout_s, lifecycle.exit.time_limit_s
        device = ns.device
        now = _monotonic() if timeout_s or time_limit_s else 0.0
        ctx = _new(RunContext)
        ctx.__dict__ = {
            "node_id": ns.id, "run_id": run.id, "time_scale": run.options.time_scale, "attempt": ns.attempts,
            "device": device if device == "cpu" else self.agent_device(run, device),
            "threads": ns.threads if ns.threads > 1 else 1, "lifecycle": lifecycle,
            "cancel_event": ns.cancel_event or threading.Event(),
            "_on_progress": lambda done, total: self.progress(run, ns, done, total),
            "_on_log": lambda message: self.log(run, ns, message),
            "deadline": now + timeout_s if timeout_s else None,
            "stop_at": now + time_limit_s if time_limit_s else None,
            "_clock": _monotonic, "items_processed": 0, "logs": [], "slot_source": None,
        }
        return ctx

    @staticmethod
    def agent_device(run: RunState, device: str) -> str:
        if device == "cpu":
            return device
        sim = {g.device_id for g in run.capacity.gpus or () if g.simulated}
        return "cpu" if device in sim else device

    def progress(self, run: RunState, ns: NodeState, done: int, total: int | None) -> None:
        """Record a node's progress; a ``NodeProgress`` event goes out for the first report,
        the last (``done == total``) and otherwise at most every ``PROGRESS_EVERY_S`` per node
        (snapshots always show the latest). A 512-image fused pipeline reported 32 times in
        50 ms; observers (the store, the UI) need a few per second."""
        ns.progress = (done, total)
        if (mb := rss_now_mb()) > ns.mem_peak_mb:  # a reading per batch (~2 us): the node's memory
            ns.mem_peak_mb = mb
        run.version += 1
        now = time.monotonic()
        if done == total or now - ns.progress_sent >= PROGRESS_EVERY_S:
            ns.progress_sent = now
            self.bus.emit(NodeProgress(run_id=run.id, node_id=ns.id, done=done, total=total))

    def log(self, run: RunState, ns: NodeState, message: str) -> None:
        ns.logs.append(message[:2000])
        run.version += 1
        self.bus.emit(NodeLog(run_id=run.id, node_id=ns.id, message=message[:2000]))

    def gather_inputs(self, run: RunState, ns: NodeState,
                      outputs_of: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
        """``ns``'s inputs by port from its finished upstream nodes' outputs (or, for a fused
        chain, from ``outputs_of``: node id -> outputs of one batch), along the routes the run
        builder worked out once per edge (``runstate.set_routes``)."""
        inputs: dict[str, Any] = {}
        for src, port_name, multiple, source_port in ns.routes:
            if outputs_of is not None:
                out = outputs_of[src.id]
            else:
                out = src.outputs
                if out is None or src.status not in _DONE:
                    continue  # "any" start rule: only finished inputs arrive
            value = out.get(source_port) if source_port is not None else out
            if multiple:
                inputs.setdefault(port_name, []).append(value)
            else:
                inputs[port_name] = value
        return inputs

    def store(self, run: RunState, ns: NodeState, outputs: Any) -> None:
        try:
            self.results.save(ns.cache_key or "", outputs if isinstance(outputs, dict) else {"out": outputs},
                              replace=ns.replace_cached)
        except UnserializableError as exc:
            self.log(run, ns, f"result not cached: {exc}")
        except OSError as exc:
            self.log(run, ns, f"result not cached: cannot write the result store ({exc})")

    def metrics(self, ns: NodeState, ctx: RunContext | None, stats: dict, cpu_s: float,
                outputs: Any = None) -> dict[str, Any]:
        """The node's ``NodeMetrics`` as a dict; ``outputs``: what it returned (its memory is at
        least what they hold; their size is kept on the node for the output budget)."""
        end = time.time()
        start = ns.start or end
        peak = stats.get("peak_rss_mb")  # isolated: the child's whole RSS peak
        own = stats.get("memory_mb")  # isolated: how far the child grew from just before the agent loaded
        if peak is None:
            rss, peak = self.rss() or 0.0, ns.peak_rss_mb or 0.0
            if rss > peak:
                peak = rss
            ns.output_bytes = held = payload_bytes(outputs) if outputs is not None else 0
            if ns.fused_into:  # counted in its chain head, as its CPU is: no reading of its own
                own = None
            else:
                now_mb = rss_now_mb() if end - start >= FRESH_READ_S or held >= FRESH_READ_BYTES else rss_last_mb()
                own = memory_growth_mb(ns.mem_base_mb, max(ns.mem_peak_mb, now_mb), held)
        # the NodeMetrics fields as a plain dict, built directly (a dataclass per node was a
        # measurable per-node cost); tests check the keys match NodeMetrics. wait_resource is
        # the node's own dict, final once it was admitted (not copied)
        return {
            "wait_inputs_s": (ns.ready_at or start) - (ns.queued_at or start),
            "wait_resource_s": (ns.admitted_at or start) - (ns.ready_at or start),
            "wait_resource": ns.wait_resource, "paused_s": ns.paused_s, "queue_s": start - (ns.admitted_at or start),
            "wall_s": end - start, "cpu_s": stats.get("cpu_s") or cpu_s, "peak_rss_mb": peak, "memory_mb": own,
            "peak_gpu_mb": self.gpu.task_peak_mb(ns.device) if ns.device.startswith("cuda") else None,
            "items": ctx.items_processed if ctx else 0, "attempts": ns.attempts, "device": ns.device,
            "threads": ns.threads, "isolated": ns.lifecycle.execution.isolate, "cold": bool(stats.get("cold")),
        }
