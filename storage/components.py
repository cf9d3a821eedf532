"""The component library: components saved from a workflow, offered in every workflow's palette.

A saved component keeps the components it holds instances of, so it can be added to a workflow
that lacks them. Saving a name its owner has saved before replaces that entry. Off lab mode
everything is shared; in lab mode a teacher's components are shared with the class, a student's
are the student's own (``list_components(visible_to=...)``).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import Engine, or_
from sqlmodel import Session, col, select

from engine.components import held_components
from engine.workflow import ComponentSpec, Workflow
from storage.errors import ComponentNotFoundError
from storage.models import ComponentRecord
from storage.summaries import ComponentSummary


def with_what_it_holds(workflow: Workflow, name: str) -> list[ComponentSpec]:
    """Component ``name`` of ``workflow`` first, then every component it holds instances of."""
    held = held_components(workflow, [name])
    if not held:
        raise ComponentNotFoundError(f"the workflow has no component named {name!r}")
    return sorted(held, key=lambda c: c.name != name)


def save_component(engine: Engine, definitions: list[ComponentSpec], *, owner: str | None = None,
                   shared: bool = True) -> str:
    """Keep ``definitions[0]`` (with the ones it holds, ``definitions[1:]``) in the library under
    its name; the owner's entry of that name is replaced. Returns its id."""
    main = definitions[0]
    text = json.dumps([d.model_dump(mode="json", exclude_defaults=True) for d in definitions])
    now = time.time()
    with Session(engine) as session:
        row = session.exec(select(ComponentRecord).where(
            ComponentRecord.name == main.name, _same_owner(owner))).first()
        if row is None:
            row = ComponentRecord(id=uuid.uuid4().hex, name=main.name, owner=owner, created=now, updated=now,
                                  json_text=text)
        row.shared, row.description, row.json_text, row.updated = shared, main.description, text, now
        session.add(row)
        session.commit()
        return row.id


def list_components(engine: Engine, visible_to: str | None = None) -> list[ComponentSummary]:
    """The library, by name: all of it (``visible_to`` None), or what a user may use (their own
    and the shared ones; their own first where a shared one has the same name)."""
    with Session(engine) as session:
        query = select(ComponentRecord)
        if visible_to is not None:
            query = query.where(or_(ComponentRecord.owner == visible_to, col(ComponentRecord.shared).is_(True)))
        rows = session.exec(query.order_by(ComponentRecord.name, ComponentRecord.updated)).all()
        out: dict[str, ComponentSummary] = {}
        for row in rows:
            if row.name in out and visible_to is not None and out[row.name].owner == visible_to:
                continue
            definitions = tuple(ComponentSpec.model_validate(d) for d in json.loads(row.json_text))
            out[row.name if visible_to is not None else row.id] = ComponentSummary(
                id=row.id, name=row.name, description=row.description, owner=row.owner, shared=row.shared,
                updated=row.updated, nodes=len(definitions[0].nodes), definitions=definitions)
    return sorted(out.values(), key=lambda c: (c.name.lower(), c.updated))


def delete_component(engine: Engine, component_id: str) -> None:
    with Session(engine) as session:
        row = session.get(ComponentRecord, component_id)
        if row is None:
            raise ComponentNotFoundError(f"no component {component_id!r} in the library")
        session.delete(row)
        session.commit()


def _same_owner(owner: str | None) -> Any:  # a SQLAlchemy clause
    return col(ComponentRecord.owner).is_(None) if owner is None else ComponentRecord.owner == owner
