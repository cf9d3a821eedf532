"""Runs a RunManager run on the Ray backend and mirrors Ray's events into the run's state.

The run manager keeps one ``RunState`` per run whatever the backend, so snapshots, the live
monitor and the store see Ray runs exactly like local ones. Ray is imported only by
``engine.backends.ray``, and only when the first Ray run starts.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from engine.errors import AmendError
from engine.events import (
    Event,
    EventBus,
    NodeCancelled,
    NodeFailed,
    NodeFinished,
    NodeLog,
    NodeProgress,
    NodeQueued,
    NodeRetried,
    NodeSkipped,
    NodeStarted,
    NodeStatus,
    NodeWaitingInputs,
    RunFinished,
    RunPaused,
    RunResumed,
    RunStatus,
)
from engine.registry import Registry
from engine.resources import Capacity
from engine.runstate import NodeState, RunState

log = logging.getLogger(__name__)

_TERMINAL = {
    NodeFinished: NodeStatus.DONE,
    NodeFailed: NodeStatus.FAILED,
    NodeSkipped: NodeStatus.SKIPPED,
    NodeCancelled: NodeStatus.CANCELLED,
}


class RayRunner:
    """Starts runs on Ray (lazily connecting) and keeps their RunState up to date."""

    def __init__(self, registry: Registry, bus: EventBus, lock: threading.RLock | threading.Lock,
                 results: Any = None) -> None:
        """``results``: the ResultStore pinned outputs are read from (by the driver)."""
        self.registry = registry
        self.results = results
        self.bus = bus
        self.lock = lock
        self._backend: Any = None
        self._connect_lock = threading.Lock()
        self._cancel: dict[str, threading.Event] = {}
        self._cancelled_nodes: dict[str, set[str]] = {}
        self._gates: dict[str, Any] = {}  # run id -> its engine.backends.ray_run.Gate (pause, step)

    def backend(self) -> Any:
        """The connected RayBackend (``$SERVICEGRID_RAY_ADDRESS``, else a local Ray)."""
        with self._connect_lock:
            if self._backend is None:
                from engine.backends.ray import RayBackend

                self._backend = RayBackend()
            return self._backend

    def capacity(self) -> Capacity:
        return self.backend().capacity()

    def validate(self, run_workflow: Any) -> list[Any]:
        return self.backend().validate(run_workflow, self.registry)

    def start(self, run: RunState) -> None:
        from engine.backends.ray_run import Gate  # no Ray import: the gate is plain Python

        self._cancel[run.id] = threading.Event()
        self._cancelled_nodes[run.id] = set()
        self._gates[run.id] = Gate(paused=run.paused, rank={nid: ns.prio for nid, ns in run.nodes.items()})
        with self.lock:
            run.status, run.started_at = RunStatus.RUNNING, time.time()
        threading.Thread(target=self._execute, args=(run,), name=f"ray-run-{run.id}", daemon=True).start()

    def cancel(self, run: RunState) -> None:
        run.cancel_requested = True
        event = self._cancel.get(run.id)
        if event is not None:
            event.set()

    def cancel_node(self, run: RunState, node_id: str) -> None:
        self._cancelled_nodes.setdefault(run.id, set()).add(node_id)

    def pause(self, run: RunState, at: str | None = None, why: str | None = None, failed: str | None = None) -> bool:
        """Hand no more of the run's ready nodes to Ray (those Ray holds wait in their workers);
        ``at``: before this node, its breakpoint (``why``: what its condition found); ``failed``:
        that node failed and is held (``why``: its error). True when it paused now."""
        gate = self._gates.get(run.id)
        if gate is None or run.status.is_terminal or not gate.pause():
            return False
        now = time.time()
        with self.lock:
            run.mark_paused(now, at, why, failed)
            ready = tuple(sorted(nid for nid, ns in run.nodes.items() if ns.status == NodeStatus.QUEUED))
        self.bus.emit(RunPaused(run_id=run.id, ready=ready, at=at, why=why, failed=failed, time=now))
        return True

    def _hold(self, run: RunState, node_id: str, why: str) -> None:
        """Pause on failure (the driver's thread): the run holds the failed node; it pauses there."""
        with self.lock:
            run.held[node_id] = why
            run.version += 1
        self.pause(run, why=why, failed=node_id)

    def retry(self, run: RunState, node_id: str) -> bool:
        """Run a failed node the Ray run holds again (``RayBackend.retry``); False when it does not hold it."""
        if self._backend is None or not self._backend.retry(run.id, node_id):
            return False
        with self.lock:
            run.held.pop(node_id, None)
            run.version += 1
        return True

    def resume(self, run: RunState, steps: int | None = None) -> bool:
        """Hand the run's ready nodes to Ray again; ``steps``: only that many more, staying paused.
        True when it was paused."""
        gate = self._gates.get(run.id)
        if gate is None or run.status.is_terminal or not gate.paused:
            return False
        if steps is not None:
            with self.lock:
                run.mark_stepped()
            return gate.step(steps)
        now = time.time()
        gate.resume()  # the driver gives up on the failed nodes it holds (what follows them is skipped)
        with self.lock:
            run.held = {}
            run.mark_resumed(now)
        self.bus.emit(RunResumed(run_id=run.id, time=now))
        return True

    def inputs(self, run: RunState, node_id: str) -> dict[str, Any] | None:
        """What a node of a Ray run under way starts with (from the object store), else None."""
        return self._backend.inputs(run.id, node_id) if self._backend is not None else None

    def amend(self, run: RunState, workflow: Any, changed: dict[str, bool | None]) -> None:
        """Hand a Ray run's driver the changed settings of nodes it has not handed to Ray
        (``engine.amend``); raises AmendError when it cannot take them (nothing changed then)."""
        if self._backend is None:
            raise AmendError(f"run {run.id} is not under way on Ray here: nothing to change")
        self._backend.amend(run.id, workflow, self.registry, changed, time_scale=run.options.time_scale)

    def close(self) -> None:
        for event in self._cancel.values():
            event.set()
        if self._backend is not None:
            self._backend.shutdown()
            self._backend = None

    def _execute(self, run: RunState) -> None:
        options = run.options
        status, outputs, error = RunStatus.FAILED, {}, None
        try:
            status, outputs = self.backend().execute(
                run.id, run.workflow, self.registry, lambda e: self._on_event(run, e),
                self._cancel[run.id], time_scale=options.time_scale, fail_fast=options.fail_fast,
                cancel_node=lambda: set(self._cancelled_nodes.get(run.id, ())),
                pins=self.results.load if self.results is not None else None, gate=self._gates[run.id],
                on_break=lambda node_id, why: self.pause(run, at=node_id, why=why),
                on_fail=(lambda node_id, why: self._hold(run, node_id, why)) if options.pause_on_failure else None)
        except Exception as exc:  # the cluster went away, or a backend bug: record, never hang
            log.exception("ray run %s failed", run.id)
            error = f"{type(exc).__name__}: {exc}"
            self.bus.emit(RunFinished(run_id=run.id, status=RunStatus.FAILED.value, error=error))
        with self.lock:
            for node_id, value in outputs.items():
                if node_id in run.nodes:
                    run.nodes[node_id].outputs = value
            run.status, run.finished_at, run.error = status, time.time(), error or run.error
            run.version += 1
        self._cancel.pop(run.id, None)
        self._cancelled_nodes.pop(run.id, None)
        self._gates.pop(run.id, None)
        with self.lock:
            if run.paused:  # it ended paused (cancelled): its pause ends with it
                run.mark_resumed(run.finished_at or time.time())
        run.finished.set()

    def _on_event(self, run: RunState, event: Event) -> None:
        with self.lock:
            ns = run.nodes.get(event.node_id or "")
            if ns is not None:
                apply_node_event(run, ns, event)
            run.version += 1
        self.bus.emit(event)


def apply_node_event(run: RunState, ns: NodeState, event: Event) -> None:
    """Update one node's state from an event reported by a remote backend."""
    if isinstance(event, NodeWaitingInputs):
        ns.status = NodeStatus.WAITING_INPUTS
    elif isinstance(event, NodeProgress):
        ns.progress = (event.done, event.total)
    elif isinstance(event, NodeQueued):
        ns.status, ns.queued_at = NodeStatus.QUEUED, event.time
    elif isinstance(event, NodeStarted):
        ns.status, ns.start, ns.device = NodeStatus.RUNNING, event.time, event.device
        ns.attempts, ns.threads, ns.worker = event.attempt, event.threads, event.worker
    elif isinstance(event, NodeRetried):
        if event.by_hand and ns.status.is_terminal:  # a failed node run again (pause on failure)
            run.done -= 1
            ns.error, ns.end = None, None
        ns.status = NodeStatus.QUEUED
        ns.logs.append(f"attempt {event.attempt} failed ({event.error_type}: {event.message}); "
                       f"retrying in {event.delay_s:g} s")
    elif isinstance(event, NodeLog):
        ns.logs.append(event.message)
    elif type(event) in _TERMINAL:
        status = _TERMINAL[type(event)]
        if isinstance(event, NodeFinished):
            ns.output_summary = dict(event.output_summary)
            status = NodeStatus.CACHED if event.cached else status
            ns.device = ns.device or str((event.metrics or {}).get("device") or "")  # a pinned node never starts
        if isinstance(event, NodeFailed):
            ns.error = {"type": event.error_type, "message": event.message, "traceback": event.traceback}
        if isinstance(event, NodeSkipped | NodeCancelled):
            ns.reason = event.reason
        ns.metrics = dict(getattr(event, "metrics", {}) or {})
        if not ns.status.is_terminal:
            run.done += 1
        ns.status, ns.end = status, event.time
