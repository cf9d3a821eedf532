"""``servicegrid components FILE``: list a workflow's components and the nodes using them;
``--group NODE ...`` makes those nodes a component (drawn as one node); ``--ungroup NODE`` puts a
component's nodes back; ``--expand`` prints the workflow a run executes (every component expanded).
The file is rewritten in place (atomically) by --group and --ungroup.

Exit codes: 0 done, 1 the nodes cannot be grouped or ungrouped (the message says why), 2 the
file cannot be read or a bad option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from engine.errors import WorkflowFileError, WorkflowInvalidError
from engine.workflow import Workflow, dump_workflow, load_workflow


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("components", help="list, group, ungroup or expand a workflow's components",
                       description="Components are reusable parts of a graph: nodes and their wires, shown as "
                                   "one node with the inputs and outputs they take and give. Runs expand them, "
                                   "so each node inside runs and is measured as itself.")
    p.add_argument("file", type=Path, help="the workflow file (JSON or YAML)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--group", nargs="+", metavar="NODE", help="make these nodes a component")
    what.add_argument("--ungroup", metavar="NODE", help="put the nodes of this component's node back")
    what.add_argument("--expand", action="store_true", help="print the workflow a run executes (JSON)")
    p.add_argument("--name", help="the new component's name (with --group; default: after its nodes)")
    p.set_defaults(handler=components)


def components(args: argparse.Namespace) -> int:
    from engine.components import component_name, flatten
    from engine.grouping import group, ungroup
    from engine.registry import default_registry
    from servicegrid.commands.pin import _write

    try:
        workflow = load_workflow(args.file)
    except WorkflowFileError as exc:
        print(f"servicegrid components: {args.file}: {exc}" + (f"\n  hint: {exc.hint}" if exc.hint else ""),
              file=sys.stderr)
        return 1
    if args.name is not None and not args.group:
        print("servicegrid components: --name goes with --group", file=sys.stderr)
        return 2
    try:
        if args.expand:
            print(dump_workflow(flatten(workflow)), end="")
            return 0
        if args.group:
            grouped, instance = group(workflow, args.group, default_registry(), name=args.name)
            _write(args.file, grouped)
            name = component_name(grouped.node(instance))  # type: ignore[arg-type]
            print(f"grouped {', '.join(args.group)} into component {name!r}, drawn as node {instance!r}")
            return 0
        if args.ungroup:
            opened, put = ungroup(workflow, args.ungroup)
            _write(args.file, opened)
            print(f"ungrouped {args.ungroup}: {', '.join(put)} back in its place")
            return 0
    except WorkflowInvalidError as exc:
        print(f"servicegrid components: {exc}", file=sys.stderr)
        return 1
    except WorkflowFileError as exc:
        print(f"servicegrid components: {exc}" + (f"\n  hint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return 1
    _list(workflow, args.file)
    return 0


def _list(workflow: Workflow, path: Path) -> None:
    from engine.components import component_name

    if not workflow.components:
        print(f"{path}: no components (group nodes with `servicegrid components {path} --group NODE ...`)")
        return
    for c in workflow.components:
        users = [n.id for n in workflow.nodes if component_name(n) == c.name]
        ins = ", ".join(dict.fromkeys(p.name for p in c.inputs)) or "none"
        outs = ", ".join(p.name for p in c.outputs) or "none"
        print(f"{c.name}: {len(c.nodes)} nodes ({', '.join(n.id for n in c.nodes)}); inputs {ins}; outputs {outs}; "
              f"used by {', '.join(users) or 'no node'}")
