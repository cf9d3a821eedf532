"""``servicegrid schema``: print (or write) the workflow file's JSON Schema."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from engine.workflow import workflow_json_schema


def schema_text() -> str:
    """The JSON Schema as written to docs/workflow-schema.json (2-space indent, newline at end)."""
    return json.dumps(workflow_json_schema(), indent=2, ensure_ascii=False) + "\n"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("schema", help="print the workflow file's JSON Schema",
                       description="Print the JSON Schema of workflow files.")
    p.add_argument("--output", "-o", type=Path, metavar="FILE", help="write it to FILE instead")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    text = schema_text()
    if args.output:
        args.output.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    return 0
