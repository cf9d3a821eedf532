"""A recorded run as a file and back: the History's JSON export (the run, its events and samples)
imported into another database, so a run travels with its workflow, capacity, options, plan,
every node's events and the samples (a teacher hands out a recorded run; a class replays and
compares it). Importing replays the events through the same ingest the live recorder uses.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session

from engine import events as ev
from storage.errors import StorageError
from storage.ingest import BatchWriter
from storage.models import RunRecord

MAX_RUN_FILE_BYTES = 64 * 2**20  # an exported run larger than this is refused before parsing


class RunImportError(StorageError, ValueError):
    """The file is not a run export this version can read (the message says where)."""


def run_document(detail: Any, events: list[ev.Event], samples: list[Any]) -> str:
    """The stored run (``RunDetail``), its events and its samples as one JSON document: what
    History's Export > JSON and ``servicegrid runs export`` write, and ``parse_run_file`` reads."""
    return json.dumps({"run": detail.to_dict(), "events": [e.to_dict() for e in events],
                       "samples": [s.to_dict() for s in samples]}, indent=1, default=str)


def parse_run_file(data: bytes | str) -> list[ev.Event]:
    """The events of a History JSON export (``{"run": ..., "events": [...], "samples": [...]}``).

    Raises RunImportError: too large, not JSON, no events, no ``RunStarted``, events of several
    runs, or an event this version does not know (its index and kind named)."""
    if len(data) > MAX_RUN_FILE_BYTES:
        raise RunImportError(f"the file is {len(data) / 2**20:.0f} MB; run files are limited to "
                             f"{MAX_RUN_FILE_BYTES // 2**20} MB")
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RunImportError(f"the file is not JSON: {exc}") from None
    raw = document.get("events") if isinstance(document, dict) else None
    if not isinstance(raw, list) or not raw:
        raise RunImportError("the file has no `events` list: export the run from History (Export > JSON)")
    events: list[ev.Event] = []
    for i, item in enumerate(raw):
        kind = item.get("kind") if isinstance(item, dict) else None
        if kind not in ev.EVENT_TYPES:
            raise RunImportError(f"events[{i}] is not an event this version knows (kind {kind!r})")
        try:
            events.append(ev.event_from_dict(item))
        except (TypeError, ValueError) as exc:
            raise RunImportError(f"events[{i}] ({kind}) cannot be read: {exc}") from None
    started = [e for e in events if isinstance(e, ev.RunStarted)]
    if len(started) != 1:
        raise RunImportError(f"the file holds {len(started)} RunStarted events; a run file holds exactly one")
    if not any(isinstance(e, ev.RunFinished) for e in events):
        raise RunImportError("the run in the file had not finished when it was exported (no RunFinished event): "
                             "export it again once it has ended")
    runs = {e.run_id for e in events}
    if len(runs) != 1:
        raise RunImportError(f"the events belong to {len(runs)} runs ({', '.join(sorted(runs)[:3])}); one run per file")
    return events


def import_run(engine: Engine, events: list[ev.Event], user: str | None = None) -> str:
    """Store a run's events as a recorded run (one transaction); a run id already in the database
    gets a new one; ``user`` (lab mode: who imports it) becomes the run's user, so their History
    lists it. Returns the id the run is stored under."""
    run_id = events[0].run_id
    if user is not None:
        events = [replace(e, user=user) if isinstance(e, ev.RunStarted) else e for e in events]
    with Session(engine) as session:
        if session.get(RunRecord, run_id) is not None:
            run_id = uuid.uuid4().hex[:12]
            events = [replace(e, run_id=run_id) for e in events]
        BatchWriter(session).apply(events)
        session.commit()
    return run_id


def describe(events: list[ev.Event]) -> dict[str, Any]:
    """What a run file holds, in a few words for a message."""
    started = next(e for e in events if isinstance(e, ev.RunStarted))
    finished = next((e for e in events if isinstance(e, ev.RunFinished)), None)
    return {"workflow": started.workflow_name, "status": getattr(finished, "status", "unfinished"),
            "events": len(events), "user": started.user}
