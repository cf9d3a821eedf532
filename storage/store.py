"""The Store: one object the app, the CLI and the tests use for everything kept in the database.

It owns an engine (short sessions per call, safe from any thread) and an event recorder that is
the run observer the executor reports to (``store.observer()``).
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import Engine, text
from sqlalchemy.exc import DatabaseError

from engine.events import Event, RunObserver
from engine.issues import Issue
from engine.workflow import Workflow
from storage import components, runs, transfer, workflows
from storage.db import current_revision, database_url, head_revision, make_engine, upgrade
from storage.errors import SchemaOutdatedError
from storage.recorder import EventRecorder
from storage.summaries import (
    ComponentSummary,
    MetricSample,
    RunDetail,
    RunSummary,
    ValidationSummary,
    WorkflowSummary,
    WorkflowVersionSummary,
)

log = logging.getLogger(__name__)

class Store:
    """Workflows, runs, events and samples in one database (``url`` default: ``database_url()``).

    With ``migrate=True`` the schema is upgraded on open; otherwise an outdated schema raises
    ``SchemaOutdatedError``.
    """

    def __init__(self, url: str | None = None, *, migrate: bool = True) -> None:
        self.url = url or database_url()
        self.engine: Engine = make_engine(self.url)
        try:
            if migrate:
                upgrade(self.engine)
            elif (current := current_revision(self.engine)) != (head := head_revision()):
                raise SchemaOutdatedError(current, head, self.safe_url)
        except BaseException:
            self.engine.dispose()
            raise
        self.recorder = EventRecorder(self.engine)
        self._closed = False
        atexit.register(self.recorder.close)  # write what is pending if nobody calls close()

    @property
    def safe_url(self) -> str:
        """The URL with any password hidden, for messages."""
        return self.engine.url.render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"Store({self.safe_url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- workflows -------------------------------------------------------------------------

    def save_workflow(
        self, workflow: Workflow, *, workflow_id: str | None = None, owner: str | None = None,
        message: str = "",
    ) -> tuple[str, int]:
        """Save a new workflow, or the next version of ``workflow_id``; returns (id, version)."""
        return workflows.save_workflow(self.engine, workflow, workflow_id=workflow_id, owner=owner, message=message)

    def get_workflow(self, workflow_id: str, version: int | None = None) -> Workflow:
        return workflows.get_workflow(self.engine, workflow_id, version)

    def list_workflows(self, owner: str | None = None, include_deleted: bool = False) -> list[WorkflowSummary]:
        return workflows.list_workflows(self.engine, owner, include_deleted)

    def workflow_versions(self, workflow_id: str) -> list[WorkflowVersionSummary]:
        return workflows.workflow_versions(self.engine, workflow_id)

    def duplicate_workflow(self, workflow_id: str, new_name: str) -> tuple[str, int]:
        return workflows.duplicate_workflow(self.engine, workflow_id, new_name)

    def delete_workflow(self, workflow_id: str) -> None:
        workflows.delete_workflow(self.engine, workflow_id)

    def save_component(self, workflow: Workflow, name: str, *, owner: str | None = None,
                       shared: bool = True) -> str:
        """Keep component ``name`` of ``workflow`` (and those it holds) in the library; returns its id."""
        return components.save_component(self.engine, components.with_what_it_holds(workflow, name),
                                         owner=owner, shared=shared)

    def list_components(self, visible_to: str | None = None) -> list[ComponentSummary]:
        return components.list_components(self.engine, visible_to)

    def delete_component(self, component_id: str) -> None:
        components.delete_component(self.engine, component_id)

    def save_validation(self, workflow_id: str, version: int, issues: Iterable[Issue]) -> ValidationSummary:
        return workflows.save_validation(self.engine, workflow_id, version, issues)

    def latest_validation(self, workflow_id: str) -> ValidationSummary | None:
        return workflows.latest_validation(self.engine, workflow_id)

    # -- recording runs --------------------------------------------------------------------

    def observer(self) -> RunObserver:
        """The run observer to subscribe to an EventBus: it only enqueues, a thread writes."""
        return self.recorder

    def on_event(self, event: Event) -> None:
        """The Store is itself an observer too (same as ``observer().on_event``)."""
        self.recorder.on_event(event)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every event received so far is in the database; False on timeout."""
        return self.recorder.flush(timeout)

    def close(self) -> None:
        """Write what is pending, stop the writer and release the connections."""
        if self._closed:
            return
        self._closed = True
        atexit.unregister(self.recorder.close)
        self.recorder.close()
        self.engine.dispose()

    # -- run history -----------------------------------------------------------------------

    def list_runs(
        self, workflow: str | None = None, status: str | None = None,
        since: float | datetime | None = None, until: float | datetime | None = None,
        user: str | None = None, limit: int = 200,
    ) -> list[RunSummary]:
        return runs.list_runs(self.engine, workflow, status, since, until, user, limit)

    def import_run(self, data: bytes | str | list[Event], user: str | None = None) -> str:
        """Store a run exported from History (its JSON, or the events ``transfer.parse_run_file``
        read from it) as a recorded run; returns its id here (a new one when this database has that
        run already); ``user``: who the run is stored for. Raises ``RunImportError`` for a bad file."""
        events = data if isinstance(data, list) else transfer.parse_run_file(data)
        return transfer.import_run(self.engine, events, user)

    def get_run(self, run_id: str) -> RunDetail | None:
        return runs.get_run(self.engine, run_id)

    def run_events(self, run_id: str, kinds: Sequence[str] | None = None) -> list[Event]:
        return runs.run_events(self.engine, run_id, kinds)

    def node_logs(self, run_id: str) -> dict[str, list[str]]:
        return runs.node_logs(self.engine, run_id)

    def run_samples(self, run_id: str, max_points: int = 5000) -> list[MetricSample]:
        return runs.run_samples(self.engine, run_id, max_points)

    def mark_interrupted(self, *, all_hosts: bool = False) -> list[str]:
        """Runs a dead process left running become ``interrupted``; returns their ids."""
        return runs.mark_interrupted(self.engine, all_hosts=all_hosts)

    def prune(self, keep_days: float | None = None, keep_runs: int | None = None, dry_run: bool = False) -> int:
        """Delete old runs with their rows; returns how many runs went (``dry_run``: would go)."""
        return runs.prune(self.engine, keep_days, keep_runs, dry_run)

    def integrity_check(self) -> bool:
        """SQLite's ``PRAGMA integrity_check`` (True on other databases, which check themselves)."""
        if self.engine.dialect.name != "sqlite":
            return True
        try:
            with self.engine.connect() as connection:
                rows = connection.execute(text("PRAGMA integrity_check")).scalars().all()
        except DatabaseError as exc:  # "file is not a database", "malformed": damaged either way
            log.error("integrity check of %s failed: %s", self.safe_url, exc)
            return False
        if rows != ["ok"]:
            log.error("integrity check of %s found damage: %s", self.safe_url, "; ".join(map(str, rows[:5])))
        return rows == ["ok"]
