"""Turns run events into rows: upserts the run and node-run records and appends events and samples.

Called by the recorder's writer thread with one batch of events and one session (one transaction).
"""

from __future__ import annotations

import math
import os
import socket
from collections.abc import Iterable
from typing import Any

from sqlalchemy import insert
from sqlmodel import Session, col, select

from engine import events as ev
from storage.models import EventRecord, MetricSampleRecord, NodeRunRecord, RunRecord

NODE_INTERRUPTED = "interrupted"  # a node that was running when its process died (not in NodeStatus)
_TERMINAL_NODE = {s.value for s in ev.NodeStatus if s.is_terminal} | {NODE_INTERRUPTED}
# NodeFinished/NodeFailed/NodeCancelled metrics that also have their own column
_METRIC_COLUMNS = {
    "wait_inputs_s": float, "wait_resource_s": float, "wall_s": float, "cpu_s": float,
    "peak_rss_mb": float, "peak_gpu_mb": float, "items": int, "attempts": int,
}
HOST = socket.gethostname()[:255]


def json_safe(value: Any) -> Any:
    """A copy of ``value`` that every JSON column accepts: str keys, lists, finite floats, no NUL."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [json_safe(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, str):
        return value.replace("\x00", "")
    return str(value).replace("\x00", "")


def _text(value: Any, limit: int | None = None) -> str | None:
    if value is None:
        return None
    text = str(value).replace("\x00", "")
    return text[:limit] if limit else text


class BatchWriter:
    """Applies one batch of events inside one session (the caller commits).

    The batch's run and node rows are loaded up front in two queries and updated in memory;
    events and samples are inserted in bulk at the end, after their parent rows.
    """

    def __init__(self, session: Session) -> None:
        self.session = session
        self.session.autoflush = False  # rows created in this batch are found in the caches below
        self.runs: dict[str, RunRecord] = {}
        self.nodes: dict[tuple[str, str], NodeRunRecord] = {}
        self.event_rows: list[dict[str, Any]] = []
        self.sample_rows: list[dict[str, Any]] = []

    def apply(self, batch: Iterable[ev.Event]) -> None:
        events = list(batch)
        self._preload({e.run_id for e in events})
        for event in events:
            self.apply_one(event)
        self.session.flush()
        if self.event_rows:
            self.session.execute(insert(EventRecord), self.event_rows)
        if self.sample_rows:
            self.session.execute(insert(MetricSampleRecord), self.sample_rows)

    def _preload(self, run_ids: set[str]) -> None:
        ids = sorted(run_ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            for run in self.session.exec(select(RunRecord).where(col(RunRecord.id).in_(chunk))):
                self.runs[run.id] = run
            for node in self.session.exec(select(NodeRunRecord).where(col(NodeRunRecord.run_id).in_(chunk))):
                self.nodes[(node.run_id, node.node_id)] = node

    def apply_one(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self._run_started(event)
        else:
            self._run(event.run_id, event.time)  # make sure the parent row exists (FK)
            if isinstance(event, ev.RunFinished):
                self._run_finished(event)
            elif isinstance(event, ev.MetricSampled):
                self._sampled(event)
            elif event.node_id is not None:
                self._node_event(event, self._node(event.run_id, event.node_id))
        self.event_rows.append({
            "run_id": event.run_id, "node_id": _text(event.node_id, 200), "kind": event.kind[:64],
            "time": event.time, "payload": json_safe(event.to_dict()),
        })

    # -- runs ------------------------------------------------------------------------------

    def _run(self, run_id: str, time: float) -> RunRecord:
        row = self.runs.get(run_id)
        if row is None:  # an event ahead of its RunStarted (or a run started elsewhere)
            row = RunRecord(id=run_id, status=ev.RunStatus.RUNNING.value, created=time, started=time,
                            host=HOST, pid=os.getpid())
            self.session.add(row)
            self.session.flush()  # before any child row: the unit of work does not order by FK
        self.runs[run_id] = row
        return row

    def _run_started(self, event: ev.RunStarted) -> None:
        row = self._run(event.run_id, event.time)
        workflow = json_safe(event.workflow)
        options = json_safe(event.options)
        plan = json_safe(event.plan)
        row.workflow_name = _text(event.workflow_name, 500) or ""
        row.workflow_json = workflow
        row.workflow_id = _text(options.get("workflow_id") or workflow.get("metadata", {}).get("workflow_id"), 64)
        row.status = ev.RunStatus.RUNNING.value
        row.policy = _text(event.policy, 100) or ""
        row.backend = _text(event.backend, 100) or ""
        row.capacity = json_safe(event.capacity)
        row.options = options
        row.plan = plan
        makespan = plan.get("makespan")
        row.predicted_makespan_s = float(makespan) if isinstance(makespan, int | float) else None
        row.created = min(row.created, event.time)
        row.started = event.time
        row.resumed_from = _text(event.resumed_from, 64)
        row.user = _text(event.user, 200)
        agents = {n.get("id"): n.get("agent", "") for n in workflow.get("nodes", []) if isinstance(n, dict)}
        for node_id in event.node_ids:
            node = self._node(event.run_id, node_id)
            node.agent = _text(agents.get(node_id, node.agent), 200) or ""

    def _run_finished(self, event: ev.RunFinished) -> None:
        row = self.runs[event.run_id]
        row.status = _text(event.status, 32) or ev.RunStatus.FAILED.value
        row.finished = event.time
        row.error = _text(event.error)

    def _sampled(self, event: ev.MetricSampled) -> None:
        self.sample_rows.append({
            "run_id": event.run_id, "time": event.time, "cpu_percent": _finite(event.cpu_percent),
            "rss_mb": _finite(event.rss_mb), "per_node": json_safe(event.per_node),
            "gpu": json_safe(event.gpu_memory_mb),
        })

    # -- nodes -----------------------------------------------------------------------------

    def _node(self, run_id: str, node_id: str) -> NodeRunRecord:
        key = (run_id, node_id[:200])
        row = self.nodes.get(key)
        if row is None:
            row = NodeRunRecord(run_id=run_id, node_id=key[1])
            self.session.add(row)
        self.nodes[key] = row
        return row

    def _amended(self, event: ev.NodeAmended) -> None:
        """A node's settings changed during the run: the run's workflow records what it ran with."""
        run = self.runs.get(event.run_id)
        if run is None or not isinstance(event.node, dict) or not isinstance(run.workflow_json, dict):
            return
        node = json_safe(event.node)
        nodes = [node if isinstance(n, dict) and n.get("id") == event.node_id else n
                 for n in run.workflow_json.get("nodes", [])]
        run.workflow_json = {**run.workflow_json, "nodes": nodes}  # a new dict: the JSON column sees the change

    def _node_event(self, event: ev.Event, row: NodeRunRecord) -> None:
        match event:
            case ev.NodeQueued():
                _set_status(row, ev.NodeStatus.QUEUED)
                row.queued_at = event.time
            case ev.NodeWaitingInputs():
                _set_status(row, ev.NodeStatus.WAITING_INPUTS)
            case ev.NodeWaitingResource():
                _set_status(row, ev.NodeStatus.WAITING_RESOURCE)
            case ev.NodeStarted():
                _set_status(row, ev.NodeStatus.RUNNING)
                row.started_at = row.started_at or event.time
                row.device = _text(event.device, 64)
                row.worker = _text(event.worker, 200) or row.worker
                row.attempts = max(row.attempts, event.attempt)
            case ev.NodeProgress():
                row.items = event.done
            case ev.NodeRetried():
                row.attempts = max(row.attempts, event.attempt)
                row.error_type = _text(event.error_type, 200)
                row.error_message = _text(event.message)
                if event.by_hand and row.status == ev.NodeStatus.FAILED.value:  # run again in its run: not failed now
                    row.status, row.finished_at = ev.NodeStatus.QUEUED.value, None
            case ev.NodeFinished():
                status = ev.NodeStatus.CACHED if event.cached else ev.NodeStatus.DONE
                _finish(row, status, event.time, event.metrics)
                row.cached = event.cached
                row.output_summary = json_safe(event.output_summary)
                row.error_type = row.error_message = None  # an earlier retry's error is history now
            case ev.NodeFailed():
                _finish(row, ev.NodeStatus.FAILED, event.time, event.metrics)
                row.error_type = _text(event.error_type, 200)
                row.error_message = _text(event.message)
                row.traceback = _text(event.traceback)
            case ev.NodeSkipped():
                _finish(row, ev.NodeStatus.SKIPPED, event.time, {})
                row.error_message = _text(event.reason)
            case ev.NodeCancelled():
                _finish(row, ev.NodeStatus.CANCELLED, event.time, event.metrics)
                row.error_message = _text(event.reason)
            case ev.NodeAmended():
                self._amended(event)
            case _:
                pass  # NodeLog and future kinds: kept as events only


def _finite(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) else 0.0


def _set_status(row: NodeRunRecord, status: ev.NodeStatus) -> None:
    if row.status not in _TERMINAL_NODE:  # a late, stale event never un-finishes a node
        row.status = status.value


def _finish(row: NodeRunRecord, status: ev.NodeStatus, time: float, metrics: dict[str, Any]) -> None:
    row.status = status.value
    row.finished_at = time
    if not metrics:
        return
    safe = json_safe(metrics)
    row.metrics = safe
    for name, cast in _METRIC_COLUMNS.items():
        value = safe.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            setattr(row, name, cast(value))
    if isinstance(safe.get("wait_resource"), dict):
        row.wait_resource = safe["wait_resource"]
    if safe.get("device") and not row.device:
        row.device = _text(safe["device"], 64)
