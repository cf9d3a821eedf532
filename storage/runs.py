"""Run history: listing and reading stored runs, finding runs a dead process left, retention."""

from __future__ import annotations

import math
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime

import psutil
from sqlalchemy import Engine, delete, func, or_, update
from sqlmodel import Session, col, select

from engine.events import Event, RunStatus, event_from_dict
from storage.ingest import HOST, NODE_INTERRUPTED
from storage.models import EventRecord, MetricSampleRecord, NodeRunRecord, RunRecord
from storage.summaries import MetricSample, NodeRunSummary, RunDetail, RunSummary

ACTIVE_RUN = (RunStatus.PENDING.value, RunStatus.RUNNING.value)
ACTIVE_NODE = ("queued", "waiting_inputs", "waiting_resource", "running")
_DELETE_CHUNK = 500


def _seconds(value: float | datetime | None) -> float | None:
    return value.timestamp() if isinstance(value, datetime) else value


def list_runs(
    engine: Engine, workflow: str | None = None, status: str | None = None,
    since: float | datetime | None = None, until: float | datetime | None = None,
    user: str | None = None, limit: int = 200,
) -> list[RunSummary]:
    """Stored runs, newest first. ``workflow`` matches a workflow id or name; times are POSIX s."""
    query = select(RunRecord)
    if workflow is not None:
        query = query.where(or_(RunRecord.workflow_id == workflow, RunRecord.workflow_name == workflow))
    if status is not None:
        query = query.where(RunRecord.status == status)
    if (start := _seconds(since)) is not None:
        query = query.where(RunRecord.created >= start)
    if (end := _seconds(until)) is not None:
        query = query.where(RunRecord.created <= end)
    if user is not None:
        query = query.where(RunRecord.user == user)
    query = query.order_by(col(RunRecord.created).desc(), col(RunRecord.id)).limit(limit)
    with Session(engine) as session:
        rows = session.exec(query).all()
        counts = _node_counts(session, [r.id for r in rows])
        return [_summary(r, counts.get(r.id, {})) for r in rows]


def get_run(engine: Engine, run_id: str) -> RunDetail | None:
    """One run with all its node runs (in workflow order where known), or None."""
    with Session(engine) as session:
        row = session.get(RunRecord, run_id)
        if row is None:
            return None
        nodes = session.exec(select(NodeRunRecord).where(NodeRunRecord.run_id == run_id)).all()
        order = {n.get("id"): i for i, n in enumerate(row.workflow_json.get("nodes", [])) if isinstance(n, dict)}
        nodes = sorted(nodes, key=lambda n: (order.get(n.node_id, len(order)), n.node_id))
        counts: dict[str, int] = defaultdict(int)
        for node in nodes:
            counts[node.status] += 1
        return RunDetail(
            summary=_summary(row, dict(counts)), workflow=row.workflow_json, capacity=row.capacity,
            options=row.options, plan=row.plan, nodes=tuple(_node(n) for n in nodes),
            host=row.host, pid=row.pid,
        )


def run_events(engine: Engine, run_id: str, kinds: Sequence[str] | None = None) -> list[Event]:
    """The run's events in the order they were recorded."""
    query = select(EventRecord).where(EventRecord.run_id == run_id)
    if kinds:
        query = query.where(col(EventRecord.kind).in_(list(kinds)))
    with Session(engine) as session:
        rows = session.exec(query.order_by(col(EventRecord.id))).all()
        return [event_from_dict(r.payload) for r in rows]


def node_logs(engine: Engine, run_id: str) -> dict[str, list[str]]:
    """What each node logged during the run (an agent's accuracy, the split it chose...), in
    order: the run's ``NodeLog`` events, which are not in the node rows."""
    logs: dict[str, list[str]] = {}
    for event in run_events(engine, run_id, ["NodeLog"]):
        if event.node_id is not None:
            logs.setdefault(event.node_id, []).append(event.message)  # type: ignore[attr-defined]
    return logs


def run_samples(engine: Engine, run_id: str, max_points: int = 5000) -> list[MetricSample]:
    """The run's system samples by time, thinned evenly (first and last kept) to ``max_points``."""
    with Session(engine) as session:
        rows = session.exec(
            select(MetricSampleRecord).where(MetricSampleRecord.run_id == run_id)
            .order_by(col(MetricSampleRecord.time), col(MetricSampleRecord.id))
        ).all()
        picked = _evenly(len(rows), max_points)
        return [_sample(rows[i]) for i in picked]


def _evenly(count: int, max_points: int) -> list[int]:
    if count <= max_points:
        return list(range(count))
    if max_points <= 1:
        return [count - 1] if max_points == 1 else []
    step = (count - 1) / (max_points - 1)
    return [round(i * step) for i in range(max_points)]


def mark_interrupted(engine: Engine, *, all_hosts: bool = False) -> list[str]:
    """Mark runs left pending/running by a process that is gone as ``interrupted``.

    A run recorded on this host counts as dead when its process no longer exists (or the pid was
    reused by a younger process). Runs from other hosts are left alone unless ``all_hosts``.
    Their unfinished active nodes become ``interrupted``; finished node records are untouched.
    """
    now = time.time()
    with Session(engine) as session:
        rows = session.exec(select(RunRecord).where(col(RunRecord.status).in_(ACTIVE_RUN))).all()
        dead = [r for r in rows if _is_dead(r, all_hosts)]
        for row in dead:
            row.status = RunStatus.INTERRUPTED.value
            row.finished = row.finished or now
            row.error = row.error or (
                f"interrupted: the process running it (pid {row.pid} on {row.host or 'an unknown host'}) "
                "stopped before the run finished; resume it to finish the remaining nodes"
            )
        ids = [r.id for r in dead]
        for chunk in _chunks(ids):
            session.exec(
                update(NodeRunRecord)
                .where(col(NodeRunRecord.run_id).in_(chunk), col(NodeRunRecord.status).in_(ACTIVE_NODE))
                .values(status=NODE_INTERRUPTED, finished_at=now)
            )
        session.commit()
        return ids


def _is_dead(row: RunRecord, all_hosts: bool) -> bool:
    if row.host not in (None, HOST):
        return all_hosts
    if row.pid is None:
        return True
    if row.pid == os.getpid():
        return False
    try:
        process = psutil.Process(row.pid)
        return process.create_time() > row.created + 1.0  # the pid now belongs to a younger process
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return True


def prune(engine: Engine, keep_days: float | None = None, keep_runs: int | None = None,
          dry_run: bool = False) -> int:
    """Delete runs older than ``keep_days`` and beyond the newest ``keep_runs`` (never active ones).

    Their node runs, events and samples go with them. Returns the number of runs deleted, or
    with ``dry_run`` the number that would be, deleting nothing. A negative or non-finite
    ``keep_days`` and a negative ``keep_runs`` are refused (``ValueError``): they would delete
    runs nobody asked to lose.
    """
    if keep_days is not None and not (math.isfinite(keep_days) and keep_days >= 0):
        raise ValueError(f"keep days must be a number of days >= 0 (runs older than it are deleted), not {keep_days:g}")
    if keep_runs is not None and keep_runs < 0:
        raise ValueError(f"keep runs must be a number of runs >= 0 (the newest are kept), not {keep_runs}")
    with Session(engine) as session:
        finished = select(RunRecord.id).where(col(RunRecord.status).not_in(ACTIVE_RUN))
        doomed: set[str] = set()
        if keep_days is not None:
            cutoff = time.time() - keep_days * 86400.0
            doomed.update(session.exec(finished.where(RunRecord.created < cutoff)).all())
        if keep_runs is not None:
            newest = session.exec(
                select(RunRecord.id).order_by(col(RunRecord.created).desc(), col(RunRecord.id)).limit(keep_runs)
            ).all()
            doomed.update(set(session.exec(finished).all()) - set(newest))
        if dry_run:
            return len(doomed)
        for chunk in _chunks(sorted(doomed)):
            for table in (EventRecord, MetricSampleRecord, NodeRunRecord):
                session.exec(delete(table).where(col(table.run_id).in_(chunk)))
            session.exec(delete(RunRecord).where(col(RunRecord.id).in_(chunk)))
        session.commit()
        return len(doomed)


def _chunks(items: list[str]) -> list[list[str]]:
    return [items[i:i + _DELETE_CHUNK] for i in range(0, len(items), _DELETE_CHUNK)]


def _node_counts(session: Session, run_ids: list[str]) -> dict[str, dict[str, int]]:
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for chunk in _chunks(run_ids):
        rows = session.exec(
            select(NodeRunRecord.run_id, NodeRunRecord.status, func.count())
            .where(col(NodeRunRecord.run_id).in_(chunk))
            .group_by(NodeRunRecord.run_id, NodeRunRecord.status)
        ).all()
        for run_id, status, count in rows:
            counts[run_id][status] = int(count)
    return counts


def _summary(row: RunRecord, counts: dict[str, int]) -> RunSummary:
    return RunSummary(
        id=row.id, workflow_id=row.workflow_id, workflow_name=row.workflow_name, status=row.status,
        policy=row.policy, backend=row.backend, created=row.created, started=row.started,
        finished=row.finished, predicted_makespan_s=row.predicted_makespan_s, error=row.error,
        resumed_from=row.resumed_from, user=row.user, node_counts=counts,
    )


def _node(row: NodeRunRecord) -> NodeRunSummary:
    return NodeRunSummary(**{name: getattr(row, name) for name in NodeRunSummary.__dataclass_fields__})


def _sample(row: MetricSampleRecord) -> MetricSample:
    return MetricSample(row.run_id, row.time, row.cpu_percent, row.rss_mb, row.per_node, row.gpu)
