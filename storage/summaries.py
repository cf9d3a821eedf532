"""Plain, frozen values the Store hands to callers (never live ORM rows, so safe across threads)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.issues import Issue


@dataclass(frozen=True)
class WorkflowSummary:
    id: str
    name: str
    owner: str | None
    created: float
    updated: float
    latest_version: int
    deleted: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ComponentSummary:
    """A component of the library: its definition first in ``definitions``, then those it holds."""

    id: str
    name: str
    description: str
    owner: str | None
    shared: bool
    updated: float
    nodes: int
    definitions: tuple[Any, ...] = ()  # engine.workflow.ComponentSpec

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "definitions"}


@dataclass(frozen=True)
class WorkflowVersionSummary:
    workflow_id: str
    version: int
    message: str
    created: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ValidationSummary:
    workflow_id: str
    version: int
    ok: bool
    issues: tuple[Issue, ...]
    created: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunSummary:
    """One run as the history list shows it; ``node_counts`` maps node status to a count."""

    id: str
    workflow_id: str | None
    workflow_name: str
    status: str
    policy: str
    backend: str
    created: float
    started: float | None
    finished: float | None
    predicted_makespan_s: float | None
    error: str | None
    resumed_from: str | None
    user: str | None
    node_counts: dict[str, int] = field(default_factory=dict)

    @property
    def duration_s(self) -> float | None:
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "duration_s": self.duration_s}


@dataclass(frozen=True)
class NodeRunSummary:
    """One node of one run, with its measurements (seconds, MB)."""

    run_id: str
    node_id: str
    agent: str
    status: str
    device: str | None
    worker: str | None
    attempts: int
    queued_at: float | None
    started_at: float | None
    finished_at: float | None
    wait_inputs_s: float | None
    wait_resource_s: float | None
    wait_resource: dict[str, Any]
    wall_s: float | None
    cpu_s: float | None
    peak_rss_mb: float | None
    peak_gpu_mb: float | None
    items: int | None
    error_type: str | None
    error_message: str | None
    traceback: str | None
    cached: bool
    output_summary: dict[str, Any]
    metrics: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunDetail:
    """A run with everything stored about it except events and samples (see Store.run_events)."""

    summary: RunSummary
    workflow: dict[str, Any]
    capacity: dict[str, Any]
    options: dict[str, Any]
    plan: dict[str, Any]
    nodes: tuple[NodeRunSummary, ...]
    host: str | None = None
    pid: int | None = None

    @property
    def id(self) -> str:
        return self.summary.id

    @property
    def status(self) -> str:
        return self.summary.status

    def node(self, node_id: str) -> NodeRunSummary | None:
        return next((n for n in self.nodes if n.node_id == node_id), None)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["summary"] = self.summary.to_dict()
        return data


@dataclass(frozen=True)
class MetricSample:
    """A system sample: process CPU %, RSS MB, per-node figures and GPU memory per device."""

    run_id: str
    time: float
    cpu_percent: float
    rss_mb: float
    per_node: dict[str, Any]
    gpu: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
