"""Database setup: the URL, the engine (SQLite tuned for several threads) and Alembic upgrades.

The schema is created and changed only by the migrations shipped in ``storage/migrations``.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from engine import settings
from storage.errors import StorageError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
SQLITE_BUSY_TIMEOUT_MS = 30_000


def database_url() -> str:
    """``$SERVICEGRID_DATABASE_URL``, or a SQLite file ``servicegrid.db`` in the data folder."""
    url = os.environ.get("SERVICEGRID_DATABASE_URL", "").strip()
    if url:
        return url
    return f"sqlite:///{settings.data_dir() / 'servicegrid.db'}"


def make_engine(url: str | None = None) -> Engine:
    """An engine for ``url`` (default ``database_url()``); SQLite gets WAL, a busy timeout and FKs."""
    url = url or database_url()
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True)
    database = parsed.database or ""
    in_memory = database in ("", ":memory:") or database.startswith("file::memory:")
    kwargs: dict = {"connect_args": {"check_same_thread": False}}
    if in_memory:
        kwargs["poolclass"] = StaticPool  # one shared connection, else every thread sees an empty db
    else:
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, **kwargs)
    event.listen(engine, "connect", _tune_sqlite)
    return engine


def _tune_sqlite(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def alembic_config(engine: Engine | None = None) -> Config:
    """An Alembic config pointing at the packaged migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if engine is not None:
        config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False).replace("%", "%%"))
    return config


def _as_engine(engine_or_url: Engine | str | None) -> tuple[Engine, bool]:
    if isinstance(engine_or_url, Engine):
        return engine_or_url, False
    return make_engine(engine_or_url), True


def upgrade(engine_or_url: Engine | str | None = None, revision: str = "head") -> None:
    """Bring the database schema up to ``revision`` (default: the newest)."""
    engine, owned = _as_engine(engine_or_url)
    try:
        with engine.begin() as connection:
            config = alembic_config(engine)
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
    except CommandError as exc:
        raise StorageError(
            f"cannot upgrade the database at {engine.url.render_as_string(hide_password=True)}: {exc}. "
            "It was probably written by a newer ServiceGrid: upgrade ServiceGrid, or point "
            "SERVICEGRID_DATABASE_URL at another database."
        ) from exc
    finally:
        if owned:
            engine.dispose()


def head_revision() -> str:
    """The newest migration shipped with this version of ServiceGrid."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "storage/migrations/versions holds no migration"
    return head


def current_revision(engine_or_url: Engine | str | None = None) -> str | None:
    """The migration the database is at (None for an empty database)."""
    engine, owned = _as_engine(engine_or_url)
    try:
        with engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def schema_differences(engine_or_url: Engine | str | None = None) -> list:
    """What differs between the database and the tables this code expects (empty when in sync)."""
    from alembic.autogenerate import compare_metadata
    from sqlmodel import SQLModel

    from storage import models  # noqa: F401  (registers the tables)

    engine, owned = _as_engine(engine_or_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diffs = compare_metadata(context, SQLModel.metadata)
    finally:
        if owned:
            engine.dispose()
    return [d for d in diffs if not _is_alembic_table(d)]


def _is_alembic_table(diff: object) -> bool:
    return "alembic_version" in repr(diff)
