"""The database tables (SQLModel, ``...Record``): workflows with versions, the component library,
validations, runs, node runs, events and metric samples. Times are POSIX seconds (float, UTC); JSON columns use
SQLAlchemy's portable JSON type. The schema itself is created only by the Alembic migrations.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Text
from sqlmodel import Field, SQLModel

# 64-bit ids on PostgreSQL; SQLite only auto-increments a plain INTEGER PRIMARY KEY
_BIG_ID = BigInteger().with_variant(Integer(), "sqlite")


class WorkflowRecord(SQLModel, table=True):
    """One workflow the user saved; its content lives in its versions."""

    __tablename__ = "workflows"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=500, index=True)
    owner: str | None = Field(default=None, max_length=200, index=True)
    created: float
    updated: float
    latest_version: int = 0
    deleted: bool = Field(default=False, index=True)


class WorkflowVersionRecord(SQLModel, table=True):
    """An immutable snapshot of a workflow (the ``dump_workflow`` JSON)."""

    __tablename__ = "workflow_versions"

    workflow_id: str = Field(
        primary_key=True, max_length=64, foreign_key="workflows.id", ondelete="CASCADE"
    )
    version: int = Field(primary_key=True)
    json_text: str = Field(sa_column=Column("json", Text, nullable=False))
    message: str = Field(default="", max_length=2000)
    created: float


class ComponentRecord(SQLModel, table=True):
    """A component kept in the library (``engine.workflow.ComponentSpec``), with the components it
    holds instances of: every workflow's palette can offer it."""

    __tablename__ = "components"

    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=100, index=True)
    owner: str | None = Field(default=None, max_length=200, index=True)
    shared: bool = Field(default=True)  # offered to every user (a teacher's, or any off lab mode)
    description: str = Field(default="", max_length=4000)
    json_text: str = Field(sa_column=Column("json", Text, nullable=False))  # [main, *what it holds]
    created: float
    updated: float


class ValidationRecord(SQLModel, table=True):
    """The findings of one validation of one workflow version."""

    __tablename__ = "validations"

    id: int | None = Field(default=None, primary_key=True)
    workflow_id: str = Field(max_length=64, foreign_key="workflows.id", ondelete="CASCADE", index=True)
    version: int
    ok: bool
    issues: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSON)
    created: float = Field(index=True)


class RunRecord(SQLModel, table=True):
    """One execution of a workflow (a copy of the workflow JSON is kept for resume and replay)."""

    __tablename__ = "runs"

    id: str = Field(primary_key=True, max_length=64)
    workflow_id: str | None = Field(default=None, max_length=64, index=True)
    workflow_name: str = Field(default="", max_length=500, index=True)
    workflow_json: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    status: str = Field(default="pending", max_length=32, index=True)
    policy: str = Field(default="", max_length=100)
    backend: str = Field(default="", max_length=100)
    capacity: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    options: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    plan: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    predicted_makespan_s: float | None = None
    created: float = Field(index=True)
    started: float | None = None
    finished: float | None = None
    error: str | None = Field(default=None, sa_type=Text)
    resumed_from: str | None = Field(default=None, max_length=64)
    user: str | None = Field(default=None, max_length=200, index=True)
    host: str | None = Field(default=None, max_length=255)  # where the recording process ran
    pid: int | None = None  # its process id, to tell a dead run from a live one


class NodeRunRecord(SQLModel, table=True):
    """One node within one run: its status and every measurement taken while it ran."""

    __tablename__ = "node_runs"

    run_id: str = Field(primary_key=True, max_length=64, foreign_key="runs.id", ondelete="CASCADE")
    node_id: str = Field(primary_key=True, max_length=200)
    agent: str = Field(default="", max_length=200)
    status: str = Field(default="pending", max_length=32, index=True)
    device: str | None = Field(default=None, max_length=64)
    worker: str | None = Field(default=None, max_length=200)
    attempts: int = 0
    queued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    wait_inputs_s: float | None = None
    wait_resource_s: float | None = None
    wait_resource: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    wall_s: float | None = None
    cpu_s: float | None = None
    peak_rss_mb: float | None = None
    peak_gpu_mb: float | None = None
    items: int | None = None
    error_type: str | None = Field(default=None, max_length=200)
    error_message: str | None = Field(default=None, sa_type=Text)
    traceback: str | None = Field(default=None, sa_type=Text)
    cached: bool = False
    output_summary: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    metrics: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class EventRecord(SQLModel, table=True):
    """Every run event as it happened (``payload`` is ``Event.to_dict()``)."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_run_id_id", "run_id", "id"),)

    id: int | None = Field(default=None, sa_column=Column(_BIG_ID, primary_key=True, autoincrement=True))
    run_id: str = Field(max_length=64, foreign_key="runs.id", ondelete="CASCADE")
    node_id: str | None = Field(default=None, max_length=200)
    kind: str = Field(max_length=64)
    time: float
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


class MetricSampleRecord(SQLModel, table=True):
    """A system sample taken during a run (process CPU and memory, per node, per GPU)."""

    __tablename__ = "metric_samples"
    __table_args__ = (Index("ix_metric_samples_run_id_time", "run_id", "time"),)

    id: int | None = Field(default=None, sa_column=Column(_BIG_ID, primary_key=True, autoincrement=True))
    run_id: str = Field(max_length=64, foreign_key="runs.id", ondelete="CASCADE")
    time: float
    cpu_percent: float = 0.0
    rss_mb: float = 0.0
    per_node: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)
    gpu: dict[str, Any] = Field(default_factory=dict, sa_type=JSON)


TABLES = (
    WorkflowRecord, WorkflowVersionRecord, ComponentRecord, ValidationRecord, RunRecord,
    NodeRunRecord, EventRecord, MetricSampleRecord,
)
