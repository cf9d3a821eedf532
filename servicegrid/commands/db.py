"""`servicegrid db upgrade|current|check|prune|mark-interrupted`: manage the database schema and history.

The database is $SERVICEGRID_DATABASE_URL or the SQLite file in the data folder (``--url`` overrides).
"""

from __future__ import annotations

import argparse
import sys

from sqlalchemy import Engine

from storage.db import current_revision, database_url, head_revision, make_engine, schema_differences, upgrade


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("db", help="manage the database: upgrade the schema, check it, prune old runs")
    p.add_argument("action", choices=["upgrade", "current", "check", "prune", "mark-interrupted"],
                   help="upgrade: apply migrations; current: show the revision; check: exit 1 unless "
                        "the schema is up to date and intact; prune: delete old runs; "
                        "mark-interrupted: flag runs a dead process left running")
    p.add_argument("--url", help="SQLAlchemy database URL (default: $SERVICEGRID_DATABASE_URL or the SQLite file)")
    p.add_argument("--keep-days", type=float, help="prune: delete runs older than this many days")
    p.add_argument("--keep-runs", type=int, help="prune: keep only this many newest runs")
    p.add_argument("--dry-run", action="store_true", help="prune: say how many runs would be deleted, delete none")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    url = args.url or database_url()
    engine = make_engine(url)
    shown = engine.url.render_as_string(hide_password=True)
    try:
        if args.action == "upgrade":
            before = current_revision(engine)
            upgrade(engine)
            print(f"{shown}: schema {before or '(empty)'} -> {current_revision(engine)}")
            return 0
        if args.action == "current":
            print(f"{shown}: schema {current_revision(engine) or '(empty)'} (this version needs {head_revision()})")
            return 0
        if args.action == "check":
            return _check(engine, shown)
        return _maintain(args, url)
    finally:
        engine.dispose()


def _check(engine: Engine, shown: str) -> int:
    current, head = current_revision(engine), head_revision()
    if current != head:
        print(f"{shown}: schema is at {current or '(empty)'}, needs {head}; run `servicegrid db upgrade`",
              file=sys.stderr)
        return 1
    diffs = schema_differences(engine)
    if diffs:
        print(f"{shown}: the schema differs from what this version expects:", file=sys.stderr)
        for diff in diffs:
            print(f"  - {diff}", file=sys.stderr)
        return 1
    from storage.store import Store

    with Store(engine.url.render_as_string(hide_password=False), migrate=False) as store:
        if not store.integrity_check():
            print(f"{shown}: PRAGMA integrity_check reports damage; restore a backup", file=sys.stderr)
            return 1
    print(f"{shown}: schema {current} is up to date and intact")
    return 0


def _maintain(args: argparse.Namespace, url: str) -> int:
    from storage.store import Store

    with Store(url, migrate=False) as store:
        if args.action == "prune":
            if args.keep_days is None and args.keep_runs is None:
                print("servicegrid db prune: say what to keep with --keep-days N and/or --keep-runs N",
                      file=sys.stderr)
                return 2
            try:
                count = store.prune(args.keep_days, args.keep_runs, dry_run=args.dry_run)
            except ValueError as exc:  # a negative limit: refused before anything is deleted
                print(f"servicegrid db prune: {exc}; nothing was deleted", file=sys.stderr)
                return 2
            print(f"would delete {count} run(s); nothing was deleted (drop --dry-run to delete them)"
                  if args.dry_run else f"deleted {count} run(s)")
            return 0
        ids = store.mark_interrupted()
        print(f"marked {len(ids)} run(s) interrupted" + (": " + ", ".join(ids) if ids else ""))
        return 0

