"""The schema comes only from the Alembic migrations, and matches the SQLModel tables exactly."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text
from sqlmodel import SQLModel

from servicegrid.cli import main
from storage import Store, database_url, make_engine, upgrade
from storage.db import current_revision, head_revision, schema_differences
from storage.errors import SchemaOutdatedError, StorageError
from storage.models import TABLES

EXPECTED_TABLES = {"workflows", "workflow_versions", "components", "validations", "runs", "node_runs", "events",
                   "metric_samples"}


def test_upgrade_from_empty_creates_the_schema(db_url: str) -> None:
    engine = make_engine(db_url)
    assert inspect(engine).get_table_names() == []
    assert current_revision(engine) is None
    upgrade(engine)
    assert set(inspect(engine).get_table_names()) == EXPECTED_TABLES | {"alembic_version"}
    assert current_revision(engine) == head_revision()
    assert {t.__tablename__ for t in TABLES} == EXPECTED_TABLES
    engine.dispose()


def test_migrated_schema_matches_the_models(db_url: str) -> None:
    upgrade(db_url)
    assert schema_differences(db_url) == []
    assert set(SQLModel.metadata.tables) >= EXPECTED_TABLES


def test_schema_differences_notice_drift(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_runs_status"))
    diffs = schema_differences(engine)
    assert any("ix_runs_status" in repr(d) for d in diffs)
    engine.dispose()


def test_upgrade_twice_is_harmless(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)
    assert current_revision(db_url) == head_revision()


def test_store_without_migrate_refuses_an_empty_database(db_url: str) -> None:
    with pytest.raises(SchemaOutdatedError, match="servicegrid db upgrade"):
        Store(db_url, migrate=False)
    upgrade(db_url)
    Store(db_url, migrate=False).close()


def test_sqlite_engine_is_tuned_for_threads(db_url: str) -> None:
    engine = make_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() > 0
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
    engine.dispose()


def test_database_url_default_and_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVICEGRID_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.delenv("SERVICEGRID_DATABASE_URL", raising=False)
    assert database_url() == f"sqlite:///{tmp_path / 'd' / 'servicegrid.db'}"
    monkeypatch.setenv("SERVICEGRID_DATABASE_URL", "sqlite:///elsewhere.db")
    assert database_url() == "sqlite:///elsewhere.db"


def test_in_memory_store_works_across_threads() -> None:
    import threading

    with Store("sqlite://") as store:
        from event_streams import make_workflow

        ids: list[str] = []
        t = threading.Thread(target=lambda: ids.append(store.save_workflow(make_workflow())[0]))
        t.start()
        t.join()
        assert store.get_workflow(ids[0]).name == "two-stage"


def test_db_command(db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "check"]) == 1
    assert "servicegrid db upgrade" in capsys.readouterr().err
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "current"]) == 0
    assert head_revision() in capsys.readouterr().out
    assert main(["db", "check"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["db", "prune"]) == 2
    assert main(["db", "prune", "--keep-runs", "5"]) == 0
    capsys.readouterr()
    assert main(["db", "prune", "--keep-days", "-3"]) == 2
    assert "nothing was deleted" in capsys.readouterr().err
    assert main(["db", "prune", "--keep-runs", "0", "--dry-run"]) == 0
    assert "would delete 0 run(s)" in capsys.readouterr().out
    assert main(["db", "mark-interrupted"]) == 0


def test_a_database_from_a_newer_version_is_refused_clearly(db_url: str) -> None:
    upgrade(db_url)
    engine = make_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(StorageError, match="newer ServiceGrid"):
        Store(db_url)
    with pytest.raises(SchemaOutdatedError, match="9999"):
        Store(db_url, migrate=False)
