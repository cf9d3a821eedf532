"""The ``servicegrid`` command line: one dispatcher; each subcommand lives in its own module.

Exit codes: 0 success, 1 the input is invalid or the run failed, 2 usage error or unreadable
file. Errors are one clear paragraph on stderr, never a traceback (set SERVICEGRID_DEBUG=1 to
see one).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from engine.errors import ServiceGridError

# subcommand name -> module that defines add_parser(sub); the parser's handler returns the exit code
COMMANDS = {
    "validate": "servicegrid.commands.validate",
    "agents": "servicegrid.commands.agents",
    "schema": "servicegrid.commands.schema",
    "plan": "servicegrid.commands.plan",
    "run": "servicegrid.commands.run",
    "runs": "servicegrid.commands.runs",
    "pin": "servicegrid.commands.pin",
    "components": "servicegrid.commands.components",
    "upgrade": "servicegrid.commands.upgrade",
    "ui": "servicegrid.commands.ui",
    "db": "servicegrid.commands.db",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="servicegrid",
        description="ServiceGrid Studio: validate, plan, run and browse deep-learning agent workflows.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMANDS.values():
        importlib.import_module(module_name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None) or not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("servicegrid: interrupted", file=sys.stderr)
        return 130
    except (ServiceGridError, OSError) as exc:
        if os.environ.get("SERVICEGRID_DEBUG"):
            raise
        print(f"servicegrid {args.command}: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, OSError) else 1


if __name__ == "__main__":
    sys.exit(main())
