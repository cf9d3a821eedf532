"""The same core round trip on SQLite and, when $SERVICEGRID_TEST_POSTGRES_URL names a server
(`eval "$(.ci/postgres.sh)"` starts a throwaway one), on PostgreSQL in a fresh database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from event_streams import emit, make_workflow, run_stream
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engine import events as ev
from engine.issues import Issue
from storage import Store
from storage.db import current_revision, head_revision, schema_differences

POSTGRES_URL = os.environ.get("SERVICEGRID_TEST_POSTGRES_URL", "")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    if not POSTGRES_URL:
        pytest.skip("set SERVICEGRID_TEST_POSTGRES_URL (e.g. eval \"$(.ci/postgres.sh)\") to test PostgreSQL")
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"sg_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def round_trip(url: str) -> None:
    """Migrate an empty database, store workflows and a recorded run, restart, read it all back."""
    with Store(url) as store:
        assert current_revision(store.engine) == head_revision()
        assert schema_differences(store.engine) == []
        wid, _ = store.save_workflow(make_workflow("pg"), owner="ada")
        _, v2 = store.save_workflow(make_workflow("pg", ("a", "b", "c")), workflow_id=wid)
        store.save_validation(wid, v2, [Issue(code="cycle", message="a -> a")])
        emit(store, run_stream("r-ok", ("a", "b"), user="ada", t0=100.0))
        emit(store, run_stream("r-old", ("a",), t0=50.0))
        emit(store, [ev.NodeFailed(run_id="r-x", node_id="n", error_type="E", message="m\x00",
                                   traceback="tb", metrics={"wall_s": float("inf"), "shape": (1, 2)})])
        assert store.flush(timeout=30)
        assert store.recorder.failed == 0
    with Store(url, migrate=False) as store:  # "restart"
        assert [w.latest_version for w in store.list_workflows(owner="ada")] == [2]
        assert [n.id for n in store.get_workflow(wid).nodes] == ["a", "b", "c"]
        validation = store.latest_validation(wid)
        assert validation is not None and not validation.ok and validation.issues[0].code == "cycle"
        run = store.get_run("r-ok")
        assert run is not None and run.status == "succeeded" and run.summary.node_counts == {"done": 2}
        assert run.node("b").metrics["custom_metric"] == 1  # type: ignore[union-attr]
        assert [r.id for r in store.list_runs(user="ada")] == ["r-ok"]
        assert len(store.run_events("r-ok")) == len(run_stream("r-ok", ("a", "b")))
        assert len(store.run_samples("r-ok", max_points=1)) == 1
        failed = store.get_run("r-x").node("n")  # type: ignore[union-attr]
        assert failed is not None and failed.error_message == "m" and failed.metrics == {"wall_s": None, "shape": [1, 2]}
        assert store.mark_interrupted() == []  # r-x belongs to this (living) process
        assert store.prune(keep_runs=2) == 1  # r-x (newest, still running) and r-ok stay
        assert {r.id for r in store.list_runs()} == {"r-ok", "r-x"}
        assert store.integrity_check()


def test_round_trip_on_sqlite(db_url: str) -> None:
    round_trip(db_url)


@pytest.mark.postgres
def test_round_trip_on_postgres(postgres_url: str) -> None:
    round_trip(postgres_url)
