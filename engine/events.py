"""Run events: past-tense facts about a run, delivered to observers (the store, the UI).

The engine never calls the UI. It emits events; whoever cares subscribes an observer.
Every event carries the run id, the node id (None for run-level events) and a wall-clock time.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

log = logging.getLogger(__name__)


class NodeStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    WAITING_INPUTS = "waiting_inputs"
    WAITING_RESOURCE = "waiting_resource"
    RUNNING = "running"
    DONE = "done"
    CACHED = "cached"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # was running when its server died (set by the store at restart)

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_NODE


_TERMINAL_NODE = {
    NodeStatus.DONE, NodeStatus.CACHED, NodeStatus.FAILED, NodeStatus.SKIPPED,
    NodeStatus.CANCELLED, NodeStatus.INTERRUPTED,
}


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    INTERRUPTED = "interrupted"  # the server died mid-run; found so at the next start

    @property
    def is_terminal(self) -> bool:
        return self not in (RunStatus.PENDING, RunStatus.RUNNING)


@dataclass(frozen=True, kw_only=True)
class Event:
    run_id: str
    node_id: str | None = None
    time: float = field(default_factory=time.time)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["kind"] = self.kind
        return data


@dataclass(frozen=True, kw_only=True)
class RunStarted(Event):
    workflow_name: str
    policy: str
    backend: str
    capacity: dict[str, Any]
    node_ids: tuple[str, ...]
    workflow: dict[str, Any] = field(default_factory=dict)  # the workflow JSON, for resume/replay
    options: dict[str, Any] = field(default_factory=dict)  # run options (time_scale, fail_fast, ...)
    plan: dict[str, Any] = field(default_factory=dict)  # the predicted plan (Plan.to_dict())
    resumed_from: str | None = None
    user: str | None = None


@dataclass(frozen=True, kw_only=True)
class NodeQueued(Event):
    pass


@dataclass(frozen=True, kw_only=True)
class NodeWaitingInputs(Event):
    waiting_for: tuple[str, ...]  # upstream node ids not yet finished


@dataclass(frozen=True, kw_only=True)
class NodeWaitingResource(Event):
    resource: str  # e.g. "memory_mb", "cuda:0.gpu_memory_mb", "custom.license"
    held_by: tuple[str, ...] = ()  # nodes holding it now


@dataclass(frozen=True, kw_only=True)
class NodeStarted(Event):
    device: str
    attempt: int
    threads: int
    demand: dict[str, Any]
    worker: str = ""


@dataclass(frozen=True, kw_only=True)
class NodeProgress(Event):
    done: int
    total: int | None = None


@dataclass(frozen=True, kw_only=True)
class NodeLog(Event):
    message: str


@dataclass(frozen=True, kw_only=True)
class NodeAmended(Event):
    """A node's settings changed in the run before it started (``engine.amend``)."""

    changes: tuple[str, ...]  # what changed, a line each ("threshold 0.5 -> 0.7")
    node: dict[str, Any] = field(default_factory=dict)  # the node as it now runs (its workflow JSON)


@dataclass(frozen=True, kw_only=True)
class NodeRetried(Event):
    attempt: int  # the attempt that failed
    error_type: str
    message: str
    delay_s: float
    by_hand: bool = False  # a failed node run again by a person (``RunManager.retry``): it is no longer failed


@dataclass(frozen=True, kw_only=True)
class NodeFinished(Event):
    metrics: dict[str, Any]  # see engine.metrics.NodeMetrics
    cached: bool = False
    output_summary: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class NodeFailed(Event):
    error_type: str
    message: str
    traceback: str
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class NodeSkipped(Event):
    reason: str


@dataclass(frozen=True, kw_only=True)
class NodeCancelled(Event):
    reason: str = "cancelled"
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class MetricSampled(Event):
    """A system sample: process CPU %, RSS, and per running node CPU % / GPU memory."""

    cpu_percent: float
    rss_mb: float
    per_node: dict[str, dict[str, float]] = field(default_factory=dict)
    gpu_memory_mb: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class RunPaused(Event):
    """No new node of the run is admitted (running ones go on) until it is resumed; a step
    admits one while it stays paused."""

    ready: tuple[str, ...] = ()  # the nodes ready to start when it paused
    at: str | None = None  # the node whose breakpoint paused it (None: paused by a person)
    why: str | None = None  # what its condition found ("confidence < 0.6 holds for 3 of 20 rows"), or the error
    failed: str | None = None  # the node whose failure paused it (``pause_on_failure``)


@dataclass(frozen=True, kw_only=True)
class RunResumed(Event):
    pass


@dataclass(frozen=True, kw_only=True)
class RunFinished(Event):
    status: str
    error: str | None = None


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        RunStarted, NodeQueued, NodeWaitingInputs, NodeWaitingResource, NodeStarted,
        NodeProgress, NodeLog, NodeAmended, NodeRetried, NodeFinished, NodeFailed, NodeSkipped,
        NodeCancelled, MetricSampled, RunPaused, RunResumed, RunFinished,
    )
}


def event_from_dict(data: dict[str, Any]) -> Event:
    """Inverse of ``Event.to_dict`` (lists become tuples where the field is a tuple)."""
    data = dict(data)
    cls = EVENT_TYPES[data.pop("kind")]
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {k: (tuple(v) if isinstance(v, list) and "tuple" in str(names[k].type) else v)
              for k, v in data.items() if k in names}
    return cls(**kwargs)


class RunObserver(Protocol):
    """Anything that wants run events. Must be quick: it is called on the engine's threads."""

    def on_event(self, event: Event) -> None: ...


class EventBus:
    """Fans events out to observers; an observer that raises is logged, never fatal."""

    def __init__(self) -> None:
        # copy-on-write: emit reads the current tuple without a lock or a copy (it is on the
        # executor's per-node path); subscribe/unsubscribe replace it under the lock
        self._observers: tuple[RunObserver, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, observer: RunObserver | Callable[[Event], None]) -> None:
        obs = observer if hasattr(observer, "on_event") else _FnObserver(observer)  # type: ignore[arg-type]
        with self._lock:
            self._observers = (*self._observers, obs)

    def unsubscribe(self, observer: RunObserver) -> None:
        with self._lock:
            self._observers = tuple(
                o for o in self._observers if o is not observer and getattr(o, "fn", None) is not observer)

    def emit(self, event: Event) -> None:
        for obs in self._observers:
            try:
                obs.on_event(event)
            except Exception:
                log.exception("run observer %r failed on %s", obs, event.kind)


class _FnObserver:
    def __init__(self, fn: Callable[[Event], None]) -> None:
        self.fn = fn

    def on_event(self, event: Event) -> None:
        self.fn(event)
