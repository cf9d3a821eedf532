"""``servicegrid upgrade FILE``: rewrite a workflow file's node params for the current versions of
their agents (``engine.versions``), saying what changed; ``--check`` only says (exit 1 when a file
needs it, for CI).

Exit codes: 0 nothing to do or done, 1 ``--check`` found params to upgrade (or the file is
invalid), 2 the file cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from servicegrid.commands.files import read_workflow, write_workflow


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upgrade", help="upgrade a workflow file's params for its agents' current versions",
                       description="Agents that change their parameters say how (migrations); this applies them "
                                   "to a saved workflow file, in place. Validation and runs apply them too, "
                                   "without writing the file.")
    p.add_argument("file", type=Path, help="the workflow file (JSON or YAML)")
    p.add_argument("--check", action="store_true", help="only say what would change; exit 1 if anything would")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from engine.registry import default_registry
    from engine.versions import newer_than_installed, upgrade

    workflow = read_workflow("upgrade", args.file)
    if isinstance(workflow, int):
        return workflow
    registry = default_registry()
    upgraded, changes = upgrade(workflow, registry)
    for item in newer_than_installed(workflow, registry):
        print(f"warning: {item.node} was saved for {item.agent} {item.saved}, newer than the {item.installed} "
              "installed here", file=sys.stderr)
    if not changes:
        print(f"{args.file}: every node's params are for its agent's current version")
        return 0
    for change in changes:
        print(f"{change.node}: {change.agent} {change.was or '(unversioned)'} -> {change.now}: {'; '.join(change.notes)}")
    if args.check:
        print(f"{args.file}: {len(changes)} node(s) to upgrade (run without --check to rewrite the file)")
        return 1
    write_workflow(args.file, upgraded)
    print(f"{args.file}: upgraded {len(changes)} node(s)")
    return 0
