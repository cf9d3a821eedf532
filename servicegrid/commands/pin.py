"""``servicegrid pin FILE NODE --run RUN_ID``: pin a node's output from a stored run, so later runs
of FILE take it from the result cache instead of computing it (and skip what only feeds it);
``--clear`` unpins; no NODE lists the file's pins.

Exit codes: 0 done, 1 the node cannot be pinned (the message says why), 2 the file or run cannot
be read or a bad option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from engine.errors import PinError
from engine.workflow import Workflow, with_pin
from servicegrid.commands.files import read_workflow, write_workflow


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("pin", help="pin a node's output from a stored run (or unpin it)",
                       description="Pin a node's output: later runs take it from the result cache "
                                   "instead of computing the node, and skip the nodes that only feed it. "
                                   "The file is rewritten in place.")
    p.add_argument("file", type=Path, help="the workflow file (JSON or YAML)")
    p.add_argument("node", nargs="?", help="the node to pin or unpin (none: list the file's pins)")
    p.add_argument("--run", metavar="RUN_ID",
                   help="the stored run whose output to pin (default: the newest run of this workflow "
                        "in which the node has a stored output)")
    p.add_argument("--clear", action="store_true", help="unpin the node")
    p.set_defaults(handler=pin)


def pin(args: argparse.Namespace) -> int:
    workflow = read_workflow("pin", args.file)
    if isinstance(workflow, int):
        return workflow
    if args.node is None:
        pins = [n for n in workflow.nodes if n.pin is not None]
        for n in pins:
            print(f"{n.id}: {n.pin.key}" + (f" (from run {n.pin.run_id})" if n.pin.run_id else ""))
        if not pins:
            print(f"{args.file}: no pinned nodes")
        return 0
    if workflow.node(args.node) is None:
        print(f"servicegrid pin: no node {args.node!r} in {args.file}; its nodes are: "
              f"{', '.join(workflow.node_ids()[:20])}", file=sys.stderr)
        return 2
    if args.clear:
        if workflow.node(args.node).pin is None:
            print(f"{args.node} was not pinned")
            return 0
        write_workflow(args.file, with_pin(workflow, args.node, None))
        print(f"unpinned {args.node}: runs compute it again")
        return 0
    try:
        spec = _pin_from_store(workflow, args.node, args.run, args.file)
    except PinError as exc:
        print(f"servicegrid pin: {exc}", file=sys.stderr)
        return 1
    if isinstance(spec, int):
        return spec
    write_workflow(args.file, with_pin(workflow, args.node, spec))
    print(f"pinned {args.node} to its output from run {spec.run_id}: runs of {args.file} take it from the "
          f"result cache (unpin with `servicegrid pin {args.file} {args.node} --clear`)")
    return 0


def _pin_from_store(workflow: Workflow, node_id: str, run_id: str | None, path: Path) -> Any:
    from engine.registry import default_registry
    from engine.results import ResultStore, pin_from_run, unpinnable
    from storage import Store

    registry, results = default_registry(), ResultStore()
    if (why := unpinnable(workflow, node_id, registry)) is not None:
        raise PinError(why)
    store = Store()
    try:
        if run_id is not None:
            detail = store.get_run(run_id)
            if detail is None:
                print(f"servicegrid pin: no stored run {run_id!r}; see `servicegrid runs`", file=sys.stderr)
                return 2
            return pin_from_run(Workflow.model_validate(detail.workflow), node_id, run_id, registry, results)
        for summary in store.list_runs(workflow=workflow.name, limit=50):
            detail = store.get_run(summary.id)
            if detail is None or detail.workflow is None:
                continue
            try:
                return pin_from_run(Workflow.model_validate(detail.workflow), node_id, summary.id, registry, results)
            except (PinError, ValueError):
                continue
        raise PinError(f"no stored run of workflow {workflow.name!r} has an output of node {node_id!r}; "
                       f"run it first (`servicegrid run {path}`), or name a run with --run")
    finally:
        store.close()
