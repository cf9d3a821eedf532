"""``servicegrid runs``: list stored runs, or ``runs show RUN_ID`` for one run with its node metrics.

Exit codes: 0 found, 1 no such run, 2 bad option.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from engine.events import RunStatus
from engine.metrics import own_memory_mb


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list stored runs, show one, export one to a file or import one",
                       description="List the runs in the database, newest first; show one; export one as a "
                                   "JSON file (`runs export RUN_ID -o run.json`) or import such a file into this "
                                   "database (`runs import run.json`), to hand a recorded run to someone.")
    p.add_argument("action", nargs="?", choices=["list", "show", "export", "import"], default="list",
                   help="list (default), show, export or import")
    p.add_argument("run_id", nargs="?", help="the run to show or export; for import, the file")
    p.add_argument("-o", "--output", type=Path, help="export: the file to write (default: standard output)")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N runs (default 20)")
    p.add_argument("--status", choices=[s.value for s in RunStatus], help="only runs with this status")
    p.add_argument("--workflow", metavar="NAME", help="only runs of this workflow (name or id)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from storage import Store

    if args.limit < 1:
        print("servicegrid runs: --limit must be at least 1", file=sys.stderr)
        return 2
    store = Store()
    try:
        store.mark_interrupted()
        if args.action in ("export", "import"):
            if not args.run_id:
                what = "RUN_ID" if args.action == "export" else "FILE"
                print(f"servicegrid runs {args.action}: give a {what}", file=sys.stderr)
                return 2
            return _export(store, args.run_id, args.output) if args.action == "export" else _import(store, args.run_id)
        if args.action == "show":
            if not args.run_id:
                print("servicegrid runs show: give a RUN_ID (see `servicegrid runs`)", file=sys.stderr)
                return 2
            return _show(store, args.run_id, args.json)
        runs = store.list_runs(workflow=args.workflow, status=args.status, limit=args.limit)
        if args.json:
            print(json.dumps([r.to_dict() for r in runs], indent=2, default=str))
        else:
            filters = [f"{k} {v!r}" for k, v in (("status", args.status), ("workflow", args.workflow)) if v]
            print(format_runs(runs) if runs or not filters else
                  f"no stored run has {' and '.join(filters)}; `servicegrid runs` lists them all")
        return 0
    finally:
        store.close()


def _export(store: Any, run_id: str, output: Path | None) -> int:
    from storage.transfer import run_document

    detail = store.get_run(run_id)
    if detail is None:
        print(f"servicegrid runs export: no run {run_id!r} in the database; list them with `servicegrid runs`",
              file=sys.stderr)
        return 1
    text = run_document(detail, store.run_events(run_id), store.run_samples(run_id))
    if output is None:
        print(text)
    else:
        output.write_text(text, encoding="utf-8")
        print(f"wrote run {run_id} to {output}")
    return 0


def _import(store: Any, path_text: str) -> int:
    from storage.transfer import RunImportError, describe, parse_run_file

    path = Path(path_text)
    try:
        data = path.read_bytes()
        events = parse_run_file(data)
    except OSError as exc:
        print(f"servicegrid runs import: cannot read {path}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except RunImportError as exc:
        print(f"servicegrid runs import: {path}: {exc}", file=sys.stderr)
        return 1
    run_id = store.import_run(events)
    about = describe(events)
    who = f" by {about['user']}" if about["user"] else ""
    print(f"imported run {run_id} of {about['workflow']!r}{who} ({about['status']}, {about['events']} events); "
          f"see it with `servicegrid runs show {run_id}` or in History")
    return 0


def _show(store: Any, run_id: str, as_json: bool) -> int:
    detail = store.get_run(run_id)
    if detail is None:
        print(f"servicegrid runs show: no run {run_id!r} in the database; list them with `servicegrid runs`",
              file=sys.stderr)
        return 1
    logs = store.node_logs(run_id)
    from engine.runstate import PAUSE_EVENTS, pauses_of

    pauses = pauses_of(store.run_events(run_id, PAUSE_EVENTS))
    if as_json:
        print(json.dumps({**detail.to_dict(), "logs": logs, "pauses": pauses}, indent=2, default=str))
    else:
        print(format_detail(detail, logs, pauses))
    return 0


MAX_LOG_LINES = 20  # per node in the text view (all of them in --json)


def _shape_lines(workflow: dict[str, Any], pauses: list[tuple[float, float | None, str]], finished: float | None) -> list[str]:
    """What the run left out or read instead of computing (its workflow's metadata and pins), and
    how long it was paused."""
    meta = workflow.get("metadata") or {}
    lines = []
    for key, text in (("run_to", "ran only up to"), ("disabled", "left out (disabled, or after a disabled node)"),
                      ("bypassed", "bypassed")):
        if meta.get(key):
            lines.append(f"{text}: {', '.join(str(n) for n in meta[key])}")
    pinned = [f"{n.get('id')} (from run {(n.get('pin') or {}).get('run_id') or '?'})"
              for n in workflow.get("nodes", []) if isinstance(n, dict) and n.get("pin")]
    if pinned:
        lines.append(f"pinned: {', '.join(pinned)}")
    if pauses:
        held = sum(((b or finished or a) - a) for a, b, _ in pauses)
        lines.append(f"paused {len(pauses)} time{'s' if len(pauses) != 1 else ''}, {held:.2f} s in all")
        lines += [f"  {why}" for _, _, why in pauses if why != "Pause"]  # the breakpoints, with what they found
    return lines


def _component_lines(detail: Any) -> list[str]:
    """A line per component instance of the run: its nodes' combined state, span and busy time."""
    from engine.components import EXPANDED_KEY
    from engine.runstate import component_rows

    instances = ((detail.workflow or {}).get("metadata") or {}).get(EXPANDED_KEY) or {}
    if not instances:
        return []
    rows = [{"node": n.node_id, "status": n.status, "start": n.started_at, "end": n.finished_at, "cpu_s": n.cpu_s,
             "memory_mb": own_memory_mb(n.metrics or {}, n.peak_rss_mb)} for n in detail.nodes]
    lines = ["", "components:"]
    for r in component_rows(instances, rows):
        lines.append(f"  {r['component']} ({r['of']}): {r['nodes']} nodes {r['status']}, span {_f(r['span_s'], 2)} s, "
                     f"busy {_f(r['busy_s'], 2)} s, cpu {_f(r['cpu_s'])} s, memory {_f(r['memory_mb'], 1)} MB")
    return lines


def _when(t: float | None) -> str:
    return "-" if t is None else dt.datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _f(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def format_runs(runs: list[Any]) -> str:
    if not runs:
        return "no runs stored yet; start one with `servicegrid run FILE`"
    lines = [f"{'run id':<14} {'status':<11} {'started':<19} {'time s':>8}  {'nodes':<22} workflow"]
    for r in runs:
        counts = ", ".join(f"{n} {k}" for k, n in sorted(r.node_counts.items()))
        lines.append(f"{r.id[:14]:<14} {r.status:<11} {_when(r.started or r.created):<19} "
                     f"{_f(r.duration_s, 2):>8}  {counts[:22]:<22} {r.workflow_name}")
    return "\n".join(lines)


def format_detail(detail: Any, logs: dict[str, list[str]] | None = None,
                  pauses: list[tuple[float, float | None, str]] | None = None) -> str:
    s = detail.summary
    lines = [f"run {s.id}: {s.status}  workflow {s.workflow_name!r}  policy {s.policy}",
             f"started {_when(s.started)}  finished {_when(s.finished)}  time {_f(s.duration_s, 2)} s"
             + (f"  predicted {s.predicted_makespan_s:.2f} s" if s.predicted_makespan_s is not None else "")]
    if s.resumed_from:
        lines.append(f"resumed from {s.resumed_from}")
    lines += _shape_lines(detail.workflow or {}, pauses or [], s.finished)
    if s.error:
        lines.append(f"error: {s.error}")
    lines.append("")
    w = min(28, max([4, *(len(n.node_id) for n in detail.nodes)]))
    gpu = any(n.peak_gpu_mb is not None for n in detail.nodes)  # a column only where one was measured
    lines.append(f"{'node':<{w}}  {'status':<9} {'device':<7} {'wall s':>8} {'wait in':>8} {'wait res':>8} "
                 f"{'cpu s':>7} {'mem MB':>8} " + (f"{'GPU MB':>8} " if gpu else "") + f"{'tries':>5}")
    for n in detail.nodes:
        lines.append(f"{n.node_id[:w]:<{w}}  {n.status:<9} {(n.device or '-'):<7} {_f(n.wall_s):>8} "
                     f"{_f(n.wait_inputs_s):>8} {_f(n.wait_resource_s):>8} {_f(n.cpu_s):>7} "
                     f"{_f(own_memory_mb(n.metrics or {}, n.peak_rss_mb), 1):>8} " + (f"{_f(n.peak_gpu_mb, 1):>8} " if gpu else "")
                     + f"{n.attempts:>5}")
        if n.error_message:
            kind = f"{n.error_type}: " if n.error_type else ""
            lines.append(f"{'':<{w}}    {kind}{n.error_message[:200]}")
    lines += _component_lines(detail)
    if logs:
        lines += ["", "logs:"]
        for n in detail.nodes:
            said = logs.get(n.node_id, [])
            lines += [f"  {n.node_id}: {line[:300]}" for line in said[:MAX_LOG_LINES]]
            if len(said) > MAX_LOG_LINES:
                lines.append(f"  {n.node_id}: ... {len(said) - MAX_LOG_LINES} more (--json has them all)")
    return "\n".join(lines)
