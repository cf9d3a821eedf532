"""``servicegrid validate FILE``: every finding in a workflow file, for people or as JSON.

Exit codes: 0 valid (warnings allowed), 1 invalid, 2 the file cannot be read or a bad option.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from engine.components import expand_components
from engine.errors import CapacityError
from engine.issues import Issue
from engine.resources import Capacity, parse_capacity
from engine.validation import validate, validate_text


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("validate", help="check a workflow file and list every problem",
                       description="Check a workflow file (JSON or YAML) and list every finding.")
    p.add_argument("file", type=Path, help="the workflow file")
    p.add_argument("--json", action="store_true", help="print the findings as a JSON list")
    p.add_argument("--capacity", metavar="SPEC",
                   help="capacity to check against, e.g. memory_mb=4096,cpu=2 "
                        "(on top of the workflow's own capacity)")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    path: Path = args.file
    try:
        workflow, issues = validate_text(path)
    except (OSError, UnicodeDecodeError) as exc:
        print(f"servicegrid validate: cannot read {path}: {_reason(exc)}", file=sys.stderr)
        return 2
    if workflow is not None and args.capacity:
        try:
            capacity = parse_capacity(args.capacity, base=workflow.capacity or Capacity())
        except CapacityError as exc:
            print(f"servicegrid validate: --capacity: {exc}", file=sys.stderr)
            return 2
        issues = validate(workflow, capacity=capacity)
    runs = expand_components(workflow)[0] if workflow is not None else None  # components' nodes too
    if runs is not None and any(n.pin is not None for n in runs.nodes):
        from engine.results import ResultStore, pin_issues

        issues = [*pin_issues(runs, ResultStore()), *issues]  # pinned outputs this machine lacks
    if args.json:
        print(json.dumps([i.to_dict() for i in issues], indent=2, ensure_ascii=False))
    else:
        nodes: int | bool = workflow is not None and len(workflow.nodes)
        print(_report(path, issues, nodes, len(runs.nodes) if runs is not None and runs is not workflow else None))
    return 1 if any(i.is_error for i in issues) else 0


def _reason(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"it is not UTF-8 text (byte {exc.start}); save it as UTF-8"
    if isinstance(exc, IsADirectoryError):
        return "it is a directory, not a workflow file"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc)


def _report(path: Path, issues: list[Issue], nodes: int | bool, expanded: int | None = None) -> str:
    errors = sum(i.is_error for i in issues)
    warnings = len(issues) - errors
    verdict = "invalid" if errors else "valid"
    head = f"{path}: {verdict} ({errors} error(s), {warnings} warning(s)"
    more = f", {expanded} with its components expanded" if expanded is not None else ""
    head += f", {nodes} node(s){more})" if nodes is not False else ")"
    lines = [head]
    for issue in issues:
        where = ", ".join(filter(None, [f"node {issue.node!r}" if issue.node else "",
                                        f"port {issue.port!r}" if issue.port else ""]))
        lines.append(f"  {issue.severity:<7} {issue.code}{f' ({where})' if where else ''}: {issue.message}")
        if issue.hint:
            lines.append(f"          hint: {issue.hint}")
    return "\n".join(lines)
