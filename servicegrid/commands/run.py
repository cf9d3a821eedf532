"""``servicegrid run FILE``: execute a workflow here, with a progress bar, and record the run.

Exit codes: 0 the run succeeded, 1 the workflow is invalid or a node failed (or the run was
cancelled), 2 the file cannot be read or a bad option.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from engine.errors import AmendError, CapacityError, WorkflowFileError, WorkflowInvalidError
from engine.events import Event, NodeFailed, NodeSkipped, RunStatus
from engine.policies import POLICIES
from engine.resources import Capacity, parse_capacity
from engine.runs import RunManager, RunOptions
from engine.runstate import RunSnapshot
from engine.workflow import Workflow, load_workflow, upstream_workflow

_TERMINAL = {"NodeFinished", "NodeFailed", "NodeSkipped", "NodeCancelled"}


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="execute a workflow and record the run",
                       description="Validate, plan and execute a workflow on this machine; the run "
                                   "is recorded in the database (see `servicegrid runs`).")
    p.add_argument("file", type=Path, nargs="?", help="the workflow file (optional with --resume)")
    p.add_argument("--policy", default="critical_path", choices=POLICIES,
                   help="admission order when several nodes are ready (default: critical_path)")
    p.add_argument("--capacity", metavar="SPEC", help="per-run limit, e.g. memory_mb=4096,cpu=2")
    p.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                   help="simulated tasks wait duration x X seconds (default 1.0)")
    p.add_argument("--fail-fast", action="store_true", help="cancel the rest when a node fails")
    p.add_argument("--no-cache", action="store_true", help="recompute every node")
    p.add_argument("--no-fuse", action="store_true",
                   help="run chains of itemwise agents stage by stage instead of batch by batch (engine.fusion)")
    p.add_argument("--to", metavar="NODE", action="append", default=[],
                   help="run only this node and the nodes it needs (repeatable); the rest waits for a whole run")
    p.add_argument("--rerun", metavar="NODE", action="append", default=[],
                   help="compute this node and every node after it again, even where the cache holds their "
                        "results (repeatable; for a node whose results you no longer trust, or that "
                        "reads something the cache cannot see)")
    p.add_argument("--priority", type=int, default=0, metavar="N",
                   help="among the runs sharing this machine, higher is admitted first (default 0; a CLI run "
                        "is alone in its process, so this matters for runs started from Python or the app)")
    p.add_argument("--resume", metavar="RUN_ID", help="resume a stored run (finished nodes are not recomputed)")
    p.add_argument("--backend", default="local", choices=("local", "ray"),
                   help="where to run: local threads (default) or Ray (pip install 'servicegrid[ray]'; "
                        "$SERVICEGRID_RAY_ADDRESS picks the cluster, else a local Ray is started)")
    p.add_argument("--step", action="store_true",
                   help="walk the run node by node from the terminal: it starts paused; Enter starts the next "
                        "node, r resumes the rest, q cancels, `set NODE PARAM=VALUE` changes a node not started yet "
                        "(edit and continue; also on Ray)")
    p.add_argument("--break", dest="breaks", action="append", default=[], metavar="NODE",
                   help="pause before NODE starts (repeatable; also a node's `breakpoint` in the file): "
                        "Enter starts it, r resumes, q cancels, as with --step")
    p.add_argument("--break-if", dest="break_if", nargs=2, action="append", default=[], metavar=("NODE", "CONDITION"),
                   help="pause before NODE only when some row of its input meets CONDITION, written "
                        "'[PORT:] FIELD OP VALUE' (OP: == != < <= > >= contains in), e.g. "
                        "--break-if route 'intents: confidence < 0.6' (repeatable; a node's `break_when` in the file)")
    p.add_argument("--pause-on-failure", action="store_true",
                   help="a node that fails (its retries spent) pauses the run and holds what follows it: "
                        "`set NODE PARAM=VALUE` fixes it, `retry` runs it again in the same run, r goes on "
                        "without it (what follows it is skipped), q cancels (also on Ray)")
    p.add_argument("--user", help="who runs it (recorded)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from storage import Store

    if args.time_scale is not None and not 0 <= args.time_scale <= 1e6:
        print("servicegrid run: --time-scale must be between 0 and 1e6", file=sys.stderr)
        return 2
    store = Store()
    try:
        store.mark_interrupted()
        workflow = _workflow(args, store)
        if isinstance(workflow, int):
            return workflow
        if args.to:
            total = len(workflow.nodes)
            try:
                workflow = upstream_workflow(workflow, args.to)
            except WorkflowFileError as exc:
                print(f"servicegrid run: --to: {exc}\n  hint: {exc.hint}", file=sys.stderr)
                return 2
            if not args.json:
                print(f"running up to {', '.join(args.to)}: {len(workflow.nodes)} of {total} nodes", file=sys.stderr)
        try:
            capacity = parse_capacity(args.capacity, base=workflow.capacity or Capacity()) if args.capacity else None
        except CapacityError as exc:
            print(f"servicegrid run: --capacity: {exc}", file=sys.stderr)
            return 2
        _before_run_notes(workflow, args.json)
        options = RunOptions(policy=args.policy, capacity=capacity, time_scale=args.time_scale,
                             fail_fast=args.fail_fast, use_cache=not args.no_cache, resume_from=args.resume,
                             user=args.user, backend=args.backend, fuse=not args.no_fuse,
                             rerun=tuple(args.rerun), priority=args.priority, start_paused=args.step,
                             breakpoints=tuple(args.breaks), break_if=tuple(map(tuple, args.break_if)),
                             pause_on_failure=args.pause_on_failure)
        stops = bool(args.breaks or args.break_if or args.pause_on_failure) or any(
            n.breakpoint for n in workflow.nodes) or any(n.breakpoint for c in workflow.components for n in c.nodes)
        return _execute(workflow, options, store, args.json, step=args.step or stops)
    finally:
        store.close()


def _before_run_notes(workflow: Workflow, quiet: bool) -> None:
    """Say which nodes are disabled (and left out with what follows them), which are bypassed,
    which take a pinned output, and which pins are stale, before the run."""
    if quiet:
        return
    off = [n.id for n in workflow.nodes if n.disabled]
    if off:
        from engine.workflow import without_disabled

        kept = set(without_disabled(workflow).node_ids())
        after = [n.id for n in workflow.nodes if n.id not in kept and n.id not in off]
        print(f"disabled: {', '.join(off)}" + (f"; not run either, as they follow it: {', '.join(after)}" if after else ""),
              file=sys.stderr)
    for node in workflow.nodes:
        if node.faults:
            print(f"fault drill: {node.id} {node.faults.describe()}", file=sys.stderr)
    passed = [n.id for n in workflow.nodes if n.bypass and not n.disabled]
    if passed:
        print(f"bypassed: {', '.join(passed)} (each one's input goes straight to what it feeds)", file=sys.stderr)
    if not any(n.pin is not None for n in workflow.nodes):
        return
    from engine.validation import validate

    stale = {i.node: i for i in validate(workflow) if i.code == "pin_stale"}
    for node in workflow.nodes:
        if node.pin is not None:
            source = f"run {node.pin.run_id}" if node.pin.run_id else "an earlier run"
            extra = " (stale: it or its upstream changed since)" if node.id in stale else ""
            print(f"pinned: {node.id} takes its output from {source}{extra}", file=sys.stderr)


def _workflow(args: argparse.Namespace, store: Any) -> Workflow | int:
    if args.file is None:
        if not args.resume:
            print("servicegrid run: give a workflow FILE (or --resume RUN_ID)", file=sys.stderr)
            return 2
        detail = store.get_run(args.resume)
        if detail is None:
            print(f"servicegrid run: no stored run {args.resume!r}; see `servicegrid runs`", file=sys.stderr)
            return 1
        return Workflow.model_validate(detail.workflow)
    try:
        return load_workflow(args.file)
    except WorkflowFileError as exc:
        hint = f"\n  hint: {exc.hint}" if exc.hint else ""
        print(f"servicegrid run: {args.file}: {exc}{hint}", file=sys.stderr)
        return 1
    except (OSError, UnicodeDecodeError) as exc:
        print(f"servicegrid run: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2


def _execute(workflow: Workflow, options: RunOptions, store: Any, as_json: bool, step: bool = False) -> int:
    manager = RunManager()
    manager.bus.subscribe(store.observer())
    bar = _progress_bar(len(workflow.nodes), quiet=as_json or step)  # stepping prints a line per node instead
    if step:
        manager.bus.subscribe(_StepLines())
    if bar is not None:
        manager.bus.subscribe(bar)
    try:
        try:
            handle = manager.submit(workflow, options)
        except WorkflowInvalidError as exc:
            print(f"servicegrid run: {exc}", file=sys.stderr)
            return 1
        except ValueError as exc:  # a bad option the manager refuses (a node to re-run that is not there)
            print(f"servicegrid run: {exc}", file=sys.stderr)
            return 2
        try:
            while step and not RunStatus(handle.snapshot().status).is_terminal:  # each pause: ask
                walk(handle, sys.stdin)
                time.sleep(STEP_POLL_S)
            status = handle.wait()
        except KeyboardInterrupt:
            manager.cancel(handle.run_id)
            status = handle.wait(10)
        snap = handle.snapshot()
    finally:
        if bar is not None:
            bar.close()
        manager.shutdown()
        store.flush()
    print(json.dumps(result_json(snap), indent=2) if as_json else format_summary(snap))
    return 0 if status == RunStatus.SUCCEEDED else 1


STEP_POLL_S = 0.02
CAUGHT_ROWS = 5  # rows of what a conditional breakpoint caught, shown in the terminal


def caught_lines(handle: Any, node_id: str) -> list[str]:
    """The first rows a node's breakpoint condition caught, as aligned text (what the designer
    shows under "What waits at"); none without a condition or when its inputs cannot be read."""
    from engine import breaks

    manager = handle.manager
    node = manager.workflow(handle.run_id).node(node_id)
    inputs = manager.inputs(handle.run_id, node_id) if node is not None and node.break_when is not None else None
    caught = breaks.matching(node.break_when, inputs) if inputs and node is not None and node.break_when else None
    if caught is None or not caught[1]["ids"]:
        return []
    port, table = caught
    shown = [c for c in table["columns"] if c != "id"][:5]
    rows = [[str(i), *(_cell(table["columns"][c][r]) for c in shown)] for r, i in enumerate(table["ids"][:CAUGHT_ROWS])]
    widths = [max(len(x) for x in col) for col in zip(["id", *shown], *rows, strict=True)]
    out = [f"  what it caught at input {port} ({len(table['ids'])} row{'s' if len(table['ids']) != 1 else ''}"
           f"{', the first ' + str(CAUGHT_ROWS) if len(table['ids']) > CAUGHT_ROWS else ''}):"]
    out += ["    " + "  ".join(x.ljust(w) for x, w in zip(row, widths, strict=True)).rstrip()
            for row in [["id", *shown], *rows]]
    return out


def _cell(value: Any) -> str:
    text = f"{value:.3g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 40 else text[:39] + "…"


def walk(handle: Any, answers: Any) -> None:
    """Walk a run started paused node by node: each time nothing of it runs, say which node the
    next step starts and read a line from ``answers``: empty starts it, ``r`` resumes the rest,
    ``q`` cancels the run (end of input: resume). Returns when the run ends or was resumed."""
    from engine.runstate import next_up

    told: Any = None
    while True:
        snap = handle.snapshot()
        if RunStatus(snap.status).is_terminal or not snap.paused:
            return
        if any(n["status"] == "running" for n in snap.nodes.values()):
            time.sleep(STEP_POLL_S)  # the node a step started is still running
            continue
        ready = next_up(snap.nodes)
        if not ready and not snap.held:
            time.sleep(STEP_POLL_S)
            continue
        if snap.paused_at and snap.paused_at != told:
            told = snap.paused_at
            why = f" ({snap.paused_why})" if snap.paused_why else ""
            print(f"breakpoint: the run paused before {snap.paused_at}{why}", file=sys.stderr)
            for line in caught_lines(handle, snap.paused_at):
                print(line, file=sys.stderr)
        if snap.held and tuple(snap.held) != told:
            told = tuple(snap.held)
            for node_id, error in snap.held.items():
                print(f"failed: the run holds {node_id} and what follows it ({error})", file=sys.stderr)
        if ready:
            after = f" (then {', '.join(ready[1:3])})" if len(ready) > 1 else ""
            first = f"Enter starts {ready[0]}{after} · "
        else:
            first = ""
        fixes = (f"retry runs {next(iter(snap.held))} again · r goes on without it · " if snap.held
                 else "r resumes the rest · ")
        print(f"paused: {first}{fixes}q cancels · set NODE PARAM=VALUE changes a node not started yet: ",
              end="", file=sys.stderr, flush=True)
        answer = answers.readline()
        if not getattr(answers, "isatty", lambda: False)():
            print(file=sys.stderr)  # a piped answer is not echoed: end the prompt's line
        if not answer:  # end of input: let it run
            print("(end of input: resuming)", file=sys.stderr)
            handle.resume()
            return
        if answer.strip().split(" ", 1)[0].lower() == "set":
            set_params(handle, answer.strip()[3:])
            continue
        if answer.strip().split(" ", 1)[0].lower() == "retry":
            retry(handle, answer.strip()[5:].strip() or next(iter(snap.held), ""))
            told = None  # a new failure of the same node is said again
            continue
        if answer.strip().lower() == "r":
            handle.resume()
            return
        if answer.strip().lower() == "q":
            handle.manager.cancel(handle.run_id)
            return
        if not ready:  # Enter (or anything else) with only a failed node held: nothing to start
            print("nothing is ready to start: retry the failed node, r goes on without it, q cancels", file=sys.stderr)
            continue
        started = ready[0]
        handle.step()
        while handle.snapshot().nodes.get(started, {}).get("status") in ("queued", "waiting_resource") and \
                not RunStatus(handle.snapshot().status).is_terminal:
            time.sleep(STEP_POLL_S)  # until the step's node has started (or the run ended)


def parse_assignments(text: str) -> tuple[str, dict[str, Any]]:
    """``NODE PARAM=VALUE [PARAM=VALUE ...]`` (what follows ``set`` at the step prompt) as the node
    and its new parameter values; a value is read as JSON where it is (``0.7``, ``true``,
    ``[1, 2]``), else as text. Raises ValueError saying what is missing."""
    words = shlex.split(text)
    if len(words) < 2:
        raise ValueError("write `set NODE PARAM=VALUE`, for example `set route threshold=0.7`")
    params: dict[str, Any] = {}
    for word in words[1:]:
        name, sep, raw = word.partition("=")
        if not sep or not name:
            raise ValueError(f"{word!r} is not PARAM=VALUE; for example `set {words[0]} threshold=0.7`")
        try:
            params[name] = json.loads(raw)
        except ValueError:
            params[name] = raw
    return words[0], params


def retry(handle: Any, node_id: str) -> None:
    """The step prompt's ``retry``: start a failed node the run holds again (a step), and wait
    until it has started."""
    if not node_id or not handle.retry(node_id):
        print(f"not retried: the run holds no failed node {node_id!r}", file=sys.stderr)
        return
    print(f"retrying {node_id}", file=sys.stderr)
    handle.step()
    while handle.snapshot().nodes.get(node_id, {}).get("status") in ("queued", "waiting_resource") and \
            not RunStatus(handle.snapshot().status).is_terminal:
        time.sleep(STEP_POLL_S)


def set_params(handle: Any, text: str) -> None:
    """The step prompt's ``set``: change parameters of a node the run has not started, and say
    what changed (or why nothing did)."""
    try:
        node, params = parse_assignments(text)
        changed = handle.set_params(node, **params)
    except (AmendError, ValueError) as exc:
        print(f"not changed: {exc}", file=sys.stderr)
        return
    print(f"changed {node}: {'; '.join(changed)}" if changed else f"{node} already has those settings",
          file=sys.stderr)


class _StepLines:
    """One line per node that ends, while a run is walked step by step (instead of the bar)."""

    def on_event(self, event: Event) -> None:
        if isinstance(event, NodeFailed):
            print(f"  failed  {event.node_id}: {event.message}", file=sys.stderr)
        elif isinstance(event, NodeSkipped):
            print(f"  skipped {event.node_id}: {event.reason}", file=sys.stderr)
        elif event.kind == "NodeFinished":
            print(f"  done    {event.node_id}", file=sys.stderr)


class _Bar:
    """tqdm on stderr, advanced by terminal node events; failures get a line of their own. The bar
    appears with the run's first event, so a workflow refused before it starts prints no empty bar
    above its findings."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.tqdm: Any = None

    def on_event(self, event: Event) -> None:
        if self.tqdm is None:
            from tqdm import tqdm

            nodes = getattr(event, "node_ids", None)  # RunStarted: the nodes that run (components expanded)
            self.tqdm = tqdm(total=len(nodes) if nodes else self.total, unit="node", file=sys.stderr,
                             dynamic_ncols=True)
        if event.kind in _TERMINAL:
            self.tqdm.update(1)
        if isinstance(event, NodeFailed):
            self.tqdm.write(f"  failed  {event.node_id}: {event.message}", file=sys.stderr)
        elif isinstance(event, NodeSkipped):
            self.tqdm.write(f"  skipped {event.node_id}: {event.reason}", file=sys.stderr)

    def close(self) -> None:
        if self.tqdm is not None:
            self.tqdm.close()


def _progress_bar(total: int, quiet: bool) -> _Bar | None:
    return None if quiet else _Bar(total)


def _makespan(snap: RunSnapshot) -> float | None:
    if snap.started_at is None or snap.finished_at is None:
        return None
    return snap.finished_at - snap.started_at


def result_json(snap: RunSnapshot) -> dict[str, Any]:
    """The ``--json`` document: run id, status, makespan and one object per node."""
    nodes = []
    for nid, view in snap.nodes.items():
        m = view["metrics"]
        nodes.append({
            "id": nid, "status": view["status"], "device": view["device"], "attempts": view["attempts"],
            "wall_s": m.get("wall_s"), "wait_s": _wait(m), "peak_rss_mb": m.get("peak_rss_mb"),
            "memory_mb": m.get("memory_mb"), "peak_gpu_mb": m.get("peak_gpu_mb"),
            "error": view["error"]["message"] if view["error"] else None, "reason": view["reason"] or None,
        })
    return {"run_id": snap.run_id, "status": snap.status, "makespan_s": _makespan(snap), "nodes": nodes}


def _wait(m: dict[str, Any]) -> float | None:
    if not m:
        return None
    return (m.get("wait_inputs_s") or 0.0) + (m.get("wait_resource_s") or 0.0) + (m.get("queue_s") or 0.0)


def format_summary(snap: RunSnapshot) -> str:
    """The summary table (node, status, device, wall s, wait s, mem MB: the node's own memory
    (``engine.metrics``), and GPU MB when a node measured GPU memory) and the run id."""
    rows = result_json(snap)["nodes"]
    w = min(28, max([4, *(len(r["id"]) for r in rows)]))
    gpu = any(r["peak_gpu_mb"] is not None for r in rows)
    lines = [f"{'node':<{w}}  {'status':<9} {'device':<7} {'wall s':>8} {'wait s':>8} {'mem MB':>8}"
             + (f" {'GPU MB':>8}" if gpu else "")]
    for r in rows:
        lines.append(f"{r['id'][:w]:<{w}}  {r['status']:<9} {r['device'] or '-':<7} {_num(r['wall_s'])} "
                     f"{_num(r['wait_s'])} {_num(r['memory_mb'], 1)}"
                     + (f" {_num(r['peak_gpu_mb'], 1)}" if gpu else ""))
        if r["error"]:
            lines.append(f"{'':<{w}}    {r['error'][:200]}")
        elif r["status"] in ("skipped", "cancelled") and r["reason"]:
            lines.append(f"{'':<{w}}    {r['reason'][:200]}")
    span = _makespan(snap)
    lines += ["", f"run {snap.run_id}: {snap.status}" + (f" in {span:.2f} s" if span is not None else ""),
              f"see it again with `servicegrid runs show {snap.run_id}`"]
    return "\n".join(lines)


def _num(value: float | None, digits: int = 3) -> str:
    return f"{'-':>8}" if value is None else f"{value:>8.{digits}f}"
