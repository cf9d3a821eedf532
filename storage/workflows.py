"""Saved workflows: versions, duplicates, soft deletes and validation results."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable

from sqlalchemy import Engine, func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from engine.issues import Issue
from engine.workflow import Workflow, dump_workflow, workflow_from_data
from storage.errors import WorkflowNotFoundError
from storage.ingest import json_safe
from storage.models import ValidationRecord, WorkflowRecord, WorkflowVersionRecord
from storage.summaries import ValidationSummary, WorkflowSummary, WorkflowVersionSummary

_SAVE_ATTEMPTS = 5  # two writers racing for the same next version: the loser retries


def save_workflow(
    engine: Engine, workflow: Workflow, *, workflow_id: str | None = None,
    owner: str | None = None, message: str = "",
) -> tuple[str, int]:
    """Store ``workflow`` as a new workflow, or as the next version of ``workflow_id``."""
    text = dump_workflow(workflow)
    for attempt in range(_SAVE_ATTEMPTS):
        try:
            return _insert_version(engine, workflow, text, workflow_id, owner, message)
        except IntegrityError:
            if attempt == _SAVE_ATTEMPTS - 1:
                raise
            time.sleep(0.01 * (attempt + 1))
    raise AssertionError("unreachable")


def _insert_version(
    engine: Engine, workflow: Workflow, text: str, workflow_id: str | None,
    owner: str | None, message: str,
) -> tuple[str, int]:
    now = time.time()
    with Session(engine) as session:
        row = session.get(WorkflowRecord, workflow_id) if workflow_id else None
        if row is None:
            row = WorkflowRecord(id=workflow_id or uuid.uuid4().hex, name=workflow.name[:500],
                                 owner=owner, created=now, updated=now, latest_version=0)
            session.add(row)
        version = (session.exec(
            select(func.max(WorkflowVersionRecord.version)).where(WorkflowVersionRecord.workflow_id == row.id)
        ).one() or 0) + 1
        row.name = workflow.name[:500]
        row.updated = now
        row.latest_version = version
        row.deleted = False
        if owner is not None:
            row.owner = owner
        session.add(WorkflowVersionRecord(workflow_id=row.id, version=version, json_text=text,
                                          message=message[:2000], created=now))
        session.commit()
        return row.id, version


def get_workflow(engine: Engine, workflow_id: str, version: int | None = None) -> Workflow:
    """The workflow as saved (the latest version unless ``version`` is given)."""
    with Session(engine) as session:
        query = select(WorkflowVersionRecord).where(WorkflowVersionRecord.workflow_id == workflow_id)
        if version is not None:
            query = query.where(WorkflowVersionRecord.version == version)
        row = session.exec(query.order_by(col(WorkflowVersionRecord.version).desc()).limit(1)).first()
        if row is None:
            raise WorkflowNotFoundError(workflow_id, version)
        return workflow_from_data(json.loads(row.json_text))


def list_workflows(engine: Engine, owner: str | None = None, include_deleted: bool = False) -> list[WorkflowSummary]:
    """Saved workflows, most recently updated first."""
    with Session(engine) as session:
        query = select(WorkflowRecord)
        if owner is not None:
            query = query.where(WorkflowRecord.owner == owner)
        if not include_deleted:
            query = query.where(col(WorkflowRecord.deleted).is_(False))
        rows = session.exec(query.order_by(col(WorkflowRecord.updated).desc())).all()
        return [_summary(r) for r in rows]


def workflow_versions(engine: Engine, workflow_id: str) -> list[WorkflowVersionSummary]:
    """Every version of a workflow, oldest first."""
    with Session(engine) as session:
        _require(session, workflow_id)
        rows = session.exec(
            select(WorkflowVersionRecord).where(WorkflowVersionRecord.workflow_id == workflow_id)
            .order_by(col(WorkflowVersionRecord.version))
        ).all()
        return [WorkflowVersionSummary(r.workflow_id, r.version, r.message, r.created) for r in rows]


def duplicate_workflow(engine: Engine, workflow_id: str, new_name: str) -> tuple[str, int]:
    """A new workflow holding a copy of the latest version of ``workflow_id``, renamed."""
    source = get_workflow(engine, workflow_id)
    with Session(engine) as session:
        owner = _require(session, workflow_id).owner
    copy = source.model_copy(update={"name": new_name})
    return save_workflow(engine, copy, owner=owner, message=f"duplicated from {workflow_id}")


def delete_workflow(engine: Engine, workflow_id: str) -> None:
    """Hide a workflow from lists (its versions and runs stay; saving it again restores it)."""
    with Session(engine) as session:
        row = _require(session, workflow_id)
        row.deleted = True
        row.updated = time.time()
        session.commit()


def save_validation(engine: Engine, workflow_id: str, version: int, issues: Iterable[Issue]) -> ValidationSummary:
    """Record the findings of validating one version; ``ok`` means no finding is an error."""
    found = tuple(issues)
    record = ValidationRecord(
        workflow_id=workflow_id, version=version, ok=not any(i.is_error for i in found),
        issues=[json_safe(i.to_dict()) for i in found], created=time.time(),
    )
    with Session(engine) as session:
        _require(session, workflow_id)
        session.add(record)
        session.commit()
        return _validation(record)


def latest_validation(engine: Engine, workflow_id: str) -> ValidationSummary | None:
    """The most recent validation result of any version of the workflow."""
    with Session(engine) as session:
        row = session.exec(
            select(ValidationRecord).where(ValidationRecord.workflow_id == workflow_id)
            .order_by(col(ValidationRecord.created).desc(), col(ValidationRecord.id).desc()).limit(1)
        ).first()
        return _validation(row) if row else None


def _require(session: Session, workflow_id: str) -> WorkflowRecord:
    row = session.get(WorkflowRecord, workflow_id)
    if row is None:
        raise WorkflowNotFoundError(workflow_id)
    return row


def _summary(row: WorkflowRecord) -> WorkflowSummary:
    return WorkflowSummary(row.id, row.name, row.owner, row.created, row.updated, row.latest_version, row.deleted)


def _validation(row: ValidationRecord) -> ValidationSummary:
    issues = tuple(Issue(**{k: v for k, v in i.items() if k in Issue.__dataclass_fields__}) for i in row.issues)
    return ValidationSummary(row.workflow_id, row.version, row.ok, issues, row.created)
