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
from servicegrid.commands.files import read_workflow, write_workflow


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("components", help="list, group, ungroup or expand a workflow's components",
                       description="Components are reusable parts of a graph: nodes and their wires, shown as "
                                   "one node with the inputs and outputs they take and give. Runs expand them, "
                                   "so each node inside runs and is measured as itself.")
    p.add_argument("file", type=Path, nargs="?", help="the workflow file (JSON or YAML)")
    what = p.add_mutually_exclusive_group()
    what.add_argument("--group", nargs="+", metavar="NODE", help="make these nodes a component")
    what.add_argument("--ungroup", metavar="NODE", help="put the nodes of this component's node back")
    what.add_argument("--expand", action="store_true", help="print the workflow a run executes (JSON)")
    what.add_argument("--save", metavar="NAME", help="keep component NAME of the file in the component library "
                                                     "(every workflow's palette in the designer offers it)")
    what.add_argument("--library", action="store_true", help="list the component library (no FILE needed)")
    what.add_argument("--export", metavar="NAME", help="print component NAME as a file of its own (JSON), to share")
    what.add_argument("--add", metavar="OTHER", type=Path,
                      help="add the components of OTHER (a component's file, or a workflow) to FILE")
    p.add_argument("--name", help="the new component's name (with --group; default: after its nodes)")
    p.set_defaults(handler=components)


def components(args: argparse.Namespace) -> int:
    from engine.components import component_name, flatten
    from engine.definitions import add_components, component_file
    from engine.grouping import group, ungroup
    from engine.registry import default_registry

    if args.library:
        return _library()
    if args.file is None:
        print("servicegrid components: give a workflow FILE (or --library)", file=sys.stderr)
        return 2
    workflow = read_workflow("components", args.file)
    if isinstance(workflow, int):
        return workflow
    if args.name is not None and not args.group:
        print("servicegrid components: --name goes with --group", file=sys.stderr)
        return 2
    try:
        if args.expand:
            print(dump_workflow(flatten(workflow)), end="")
            return 0
        if args.group:
            grouped, instance = group(workflow, args.group, default_registry(), name=args.name)
            write_workflow(args.file, grouped)
            name = component_name(grouped.node(instance))  # type: ignore[arg-type]
            print(f"grouped {', '.join(args.group)} into component {name!r}, drawn as node {instance!r}")
            return 0
        if args.save:
            return _save(workflow, args.save)
        if args.export:
            print(dump_workflow(component_file(workflow, args.export)), end="")
            return 0
        if args.add:
            other = load_workflow(args.add)
            merged, renamed = add_components(workflow, other.components)
            write_workflow(args.file, merged)
            names = [renamed.get(c.name, c.name) for c in other.components]
            print(f"added {', '.join(names) or 'no components'} from {args.add} to {args.file}"
                  + (f" (renamed: {', '.join(f'{a} -> {b}' for a, b in renamed.items())})" if renamed else ""))
            return 0
        if args.ungroup:
            opened, put = ungroup(workflow, args.ungroup)
            write_workflow(args.file, opened)
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


def _save(workflow: Workflow, name: str) -> int:
    from storage import Store
    from storage.errors import ComponentNotFoundError

    store = Store()
    try:
        store.save_component(workflow, name)
    except ComponentNotFoundError as exc:
        known = ", ".join(c.name for c in workflow.components) or "none"
        print(f"servicegrid components: {exc}; its components are: {known}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"saved component {name!r} to the library at {store.url}")
    return 0


def _library() -> int:
    from storage import Store

    store = Store()
    try:
        entries = store.list_components()
    finally:
        store.close()
    for e in entries:
        who = f", by {e.owner}" if e.owner else ""
        print(f"{e.name}: {e.nodes} nodes{who}" + (f"; {e.description}" if e.description else ""))
    if not entries:
        print("the component library is empty (save one with `servicegrid components FILE --save NAME`)")
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
