"""A self-contained HTML report of a run: summary, inline-SVG Gantt and resource charts, node table.

No scripts and no network: charts are drawn here as SVG from ui.monitor.frames rows. Every
user-supplied string (names, messages, logs) goes through ``html.escape``.
"""

from __future__ import annotations

import datetime as dt
import html
from typing import Any

from engine.amend import CHANGED_LOG
from engine.workflow import Workflow
from ui.graph_svg import Look, graph_svg
from ui.monitor import frames
from ui.monitor.charts import CRITICAL_COLOR, STATUS_COLORS
from ui.monitor.view import RunView

PALETTE = ["#2563eb", "#16a34a", "#ea580c", "#9333ea", "#0891b2", "#be123c", "#65a30d", "#a16207"]
WIDTH, LEFT, RIGHT = 900, 190, 20
CSS = """body{font:14px system-ui,sans-serif;margin:24px;color:#0f172a;max-width:980px}
h1{font-size:22px}h2{font-size:17px;margin-top:28px}table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #e2e8f0;padding:4px 6px;text-align:left;font-size:12px;vertical-align:top}
th{background:#f8fafc}.kv td:first-child{color:#475569;width:220px}svg text{font:11px system-ui,sans-serif}
pre{white-space:pre-wrap;background:#f8fafc;padding:8px;font-size:11px}.legend span{margin-right:12px}"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _when(ts: float | None) -> str:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else "—"


def _sx(t: float, span: float) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * (t / span if span > 0 else 0.0)


def _axis(span: float, y: float) -> str:
    parts = [f'<line x1="{LEFT}" y1="{y}" x2="{WIDTH - RIGHT}" y2="{y}" stroke="#94a3b8"/>']
    for i in range(6):
        t = span * i / 5
        x = _sx(t, span)
        parts.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#94a3b8"/>'
                     f'<text x="{x:.1f}" y="{y + 15}" text-anchor="middle">{t:.1f}s</text>')
    return "".join(parts)


def gantt_svg(view: RunView) -> str:
    """Predicted (grey, critical path outlined red) and actual (by status) bars per device · node."""
    rows = frames.gantt_rows(view)
    order = frames.node_order(view)
    if not order:
        return "<p>No nodes.</p>"
    span = max([view.elapsed_s] + [r["end"] for r in rows] + [1e-6])
    lane = {r["node"]: r["lane"] for r in rows}
    height = 20 * len(order) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" role="img" '
             f'aria-label="Gantt chart">']
    for i, nid in enumerate(order):
        y = 20 * i + 4
        parts.append(f'<text x="{LEFT - 6}" y="{y + 12}" text-anchor="end">{_e(lane.get(nid, "cpu"))} · {_e(nid)}'
                     "</text>")
    index = {nid: i for i, nid in enumerate(order)}
    for r in sorted(rows, key=lambda r: r["kind"] != "predicted"):
        y = 20 * index[r["node"]] + 4
        x1, x2 = _sx(r["start"], span), _sx(r["end"], span)
        w = max(1.0, x2 - x1)
        title = f"<title>{_e(r['node'])}: {_e(r['kind'])} {_e(r['status'])} {r['start']:.2f}–{r['end']:.2f}s</title>"
        if r["kind"] == "predicted":
            stroke = CRITICAL_COLOR if r["critical"] else "#94a3b8"
            parts.append(f'<rect x="{x1:.1f}" y="{y}" width="{w:.1f}" height="16" fill="{STATUS_COLORS["predicted"]}" '
                         f'fill-opacity="0.6" stroke="{stroke}" stroke-width="{2 if r["critical"] else 0.5}">{title}</rect>')
        else:
            color = STATUS_COLORS.get(r["status"], "#64748b")
            parts.append(f'<rect x="{x1:.1f}" y="{y + 4}" width="{w:.1f}" height="8" fill="{color}">{title}</rect>')
    parts.append(_axis(span, 20 * len(order) + 6))
    parts.append("</svg>")
    return "".join(parts)


def _steps(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Step-after corners: a value holds until the next point's time."""
    out: list[tuple[float, float]] = []
    for i, (t, v) in enumerate(points):
        if i:
            out.append((t, points[i - 1][1]))
        out.append((t, v))
    return out


def lines_svg(rows: list[dict[str, Any]], x: str, y: str, series: str, unit: str,
              rules: list[dict[str, Any]] | None = None, height: int = 180) -> str:
    """A small multi-series step line chart with optional horizontal capacity rules."""
    if not rows:
        return "<p>No samples.</p>"
    rules = rules or []
    span = max(r[x] for r in rows) or 1e-6
    top = max([r[y] for r in rows] + [r["value"] for r in rules] + [1e-6]) * 1.08
    plot_h = height - 30

    def sy(v: float) -> float:
        return 6 + plot_h * (1 - v / top)

    names = list(dict.fromkeys(r[series] for r in rows))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height + 10}" role="img">',
             f'<text x="{LEFT - 6}" y="{sy(top / 1.08) + 4:.1f}" text-anchor="end">{top / 1.08:,.0f} {_e(unit)}</text>',
             f'<text x="{LEFT - 6}" y="{sy(0):.1f}" text-anchor="end">0</text>']
    for k, name in enumerate(names[:40]):
        pts = _steps([(r[x], r[y]) for r in rows if r[series] == name])
        path = " ".join(f"{_sx(t, span):.1f},{sy(v):.1f}" for t, v in pts)
        parts.append(f'<polyline fill="none" stroke="{PALETTE[k % len(PALETTE)]}" stroke-width="1.5" '
                     f'points="{path}"><title>{_e(name)}</title></polyline>')
    for rule in rules:
        yy = sy(rule["value"])
        parts.append(f'<line x1="{LEFT}" y1="{yy:.1f}" x2="{WIDTH - RIGHT}" y2="{yy:.1f}" stroke="{CRITICAL_COLOR}" '
                     f'stroke-dasharray="6 4"/><text x="{LEFT + 4}" y="{yy - 4:.1f}" fill="{CRITICAL_COLOR}">'
                     f'{_e(rule["label"])}</text>')
    parts.append(_axis(span, plot_h + 6))
    parts.append("</svg>")
    legend = "".join(f'<span style="color:{PALETTE[k % len(PALETTE)]}">■ {_e(n)}</span>'
                     for k, n in enumerate(names[:40]))
    return "".join(parts) + f'<div class="legend">{legend}</div>'


def _kv(pairs: list[tuple[str, Any]]) -> str:
    return '<table class="kv">' + "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in pairs) + "</table>"


def _node_table(view: RunView) -> str:
    rows = frames.node_table(view)
    head = "".join(f"<th>{_e(k)}</th>" for k in (rows[0] if rows else {}))
    body = "".join("<tr>" + "".join(f"<td>{_e('' if v is None else v)}</td>" for v in r.values()) + "</tr>"
                   for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _fit_table(view: RunView) -> str:
    """Planned against measured per node (frames.fit_rows), the notable gaps in words first."""
    rows = frames.fit_rows(view)
    if not rows:
        return "<p>No node ran (cached nodes ran nothing).</p>"
    lines = frames.fit_summary(view, rows)
    words = ("<p>Furthest from the plan: " + "; ".join(_e(line) for line in lines) + ".</p>") if lines else \
        "<p>No node was far from its plan.</p>"
    head = "".join(f"<th>{k}</th>" for k in ("node", "measure", "planned / reserved", "measured", "measured / planned",
                                              "verdict"))
    body = []
    for r in rows:
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.0%}"
        body.append(f"<tr><td>{_e(r['node'])}</td><td>{_e(r['measure'])}</td><td>{r['planned']:,.3g}</td>"
                    f"<td>{r['measured']:,.3g}</td><td>{ratio}</td><td>{_e(r['verdict'])}</td></tr>")
    return f"{words}<table><tr>{head}</tr>{''.join(body)}</table>"


def _errors(view: RunView) -> str:
    parts = []
    for nid, n in view.nodes.items():
        if n.get("error"):
            err = n["error"]
            parts.append(f"<h3>{_e(nid)}: {_e(err['type'])}</h3><p>{_e(err['message'])}</p>"
                         + (f"<pre>{_e(err['traceback'])}</pre>" if err.get("traceback") else ""))
    return "".join(parts) or "<p>None.</p>"


REPORT_LOOK = Look(box_w=140.0, box_h=26.0, pad=12.0, label_chars=22, font=11.0, max_scale=0.8)


def status_graph_svg(view: RunView) -> str:
    """The run's workflow laid out as on the canvas, each node filled with its final status's
    colour (the Gantt's), the legend below; empty when the stored workflow cannot be read."""
    try:
        workflow = Workflow.model_validate(view.workflow or {})
    except ValueError:
        return ""
    if not workflow.nodes:
        return ""
    statuses = {nid: str(n.get("status", "")) for nid, n in view.nodes.items()}
    fills = {nid: STATUS_COLORS[s] for nid, s in statuses.items() if s in STATUS_COLORS}
    rows = len({n.position.y for n in workflow.nodes if n.position is not None}) or len(workflow.nodes)
    svg = graph_svg(workflow, None, 900, int(min(520, 90 + 48 * rows)), REPORT_LOOK, fills)
    legend = " ".join(f"<span style='background:{STATUS_COLORS[s]};padding:0 6px;border-radius:3px'>{_e(s)}</span>"
                      for s in sorted(set(statuses.values())) if s in STATUS_COLORS)
    return f"{svg}<p>{legend}</p>"


def during_run(view: RunView) -> str:
    """What happened to the run while it went on, as a list: each pause (what paused it, how long)
    and each setting changed before its node started (edit and continue); "" when nothing did."""
    items = [f"Paused ({why or 'Pause'}) for {max(0.0, (view.now if b is None else b) - a):,.1f} s"
             for a, b, why in view.pauses]
    items += [f"{nid}: {line.removeprefix(CHANGED_LOG)} (changed during the run, before it started)"
              for nid, node in view.nodes.items() for line in node.get("logs") or () if line.startswith(CHANGED_LOG)]
    return "<ul>" + "".join(f"<li>{_e(item)}</li>" for item in items) + "</ul>" if items else ""


def html_report(view: RunView) -> str:
    """The whole report as one HTML document (UTF-8, no external resources)."""
    plan = view.plan or {}
    summary = [("run", view.run_id), ("workflow", view.workflow_name), ("status", view.status),
               ("started", _when(view.t0)), ("elapsed", f"{view.elapsed_s:.2f} s"),
               ("nodes done", f"{view.progress[0]} / {view.progress[1]}"),
               ("policy", view.options.get("policy", "")), ("backend", view.options.get("backend", "local")),
               ("time scale", view.time_scale),
               ("predicted makespan", f"{float(plan['makespan']) * view.time_scale:.2f} s" if plan.get("makespan")
                is not None else "—"),
               ("lower bound", f"{float(plan['lower_bound']) * view.time_scale:.2f} s" if plan.get("lower_bound")
                is not None else "—"),
               ("critical path", " → ".join(plan.get("critical_path") or []) or "—"),
               ("mean reserved share", ", ".join(f"{k} {v}%" for k, v in frames.mean_utilisation(view).items()) or "—"),
               ("resumed from", view.resumed_from or "—"), ("error", view.error or "—")]
    rules = frames.capacity_rules(view)
    graph = status_graph_svg(view)
    body = [f"<h1>Run {_e(view.run_id)} · {_e(view.workflow_name)}</h1>", _kv(summary),
            *(["<h2>Workflow by node status</h2>", graph] if graph else []),
            "<h2>Gantt: actual over predicted</h2>", gantt_svg(view),
            *(["<h2>During the run</h2>", during] if (during := during_run(view)) else []),
            "<h2>CPU per agent (%; 100 = one thread)</h2>",
            lines_svg(frames.cpu_rows(view, 2000), "t", "cpu_percent", "node", "%", rules["cpu"]),
            "<h2>Memory and GPU memory (MB)</h2>",
            lines_svg(frames.memory_rows(view, 2000), "t", "mb", "series", "MB", rules["memory"]),
            "<h2>Reserved share of each resource (%)</h2>",
            lines_svg(frames.utilisation_rows(view), "t", "percent", "resource", "%",
                      [{"label": "capacity", "value": 100.0}]),
            "<h2>Nodes</h2>", _node_table(view), "<h2>Planned vs measured</h2>", _fit_table(view),
            "<h2>Errors</h2>", _errors(view),
            f"<p style='color:#64748b'>Generated {_e(_when(view.now))} by ServiceGrid Studio.</p>"]
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Run {_e(view.run_id)} · {_e(view.workflow_name)}</title><style>{CSS}</style></head><body>"
            + "".join(body) + "</body></html>")
