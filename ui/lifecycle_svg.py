"""A node's lifecycle rules as a small state diagram (SVG): when it may start, admission, its
attempts with their timeout and batch size, retries with backoff, and when it stops; during and
after a run the state it is in is filled and the states it went through are outlined (the anchor
study's differentiator 12). Every text is escaped; the picture is shown as an image. Pure Python."""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

from engine.spec import Lifecycle

WIDTH, HEIGHT = 600, 170
BOX_W, BOX_H = 112, 46
GREY, INK, MUTED = "#cbd5e1", "#0f172a", "#64748b"
FILL = {"start": "#f59e0b", "admit": "#f59e0b", "run": "#2563eb", "retry": "#f97316", "done": "#16a34a",
        "end": "#dc2626"}
# a node's status -> the state of the diagram it is in
STATE = {"pending": "start", "queued": "start", "waiting_inputs": "start", "waiting_resource": "admit",
         "running": "run", "done": "done", "cached": "done", "failed": "end", "cancelled": "end",
         "interrupted": "end"}
ORDER = ("start", "admit", "run", "done")


@dataclass(frozen=True)
class _Box:
    key: str
    x: float
    y: float
    title: str
    sub: str


def lifecycle_svg(lifecycle: Lifecycle, inputs: int = 0, status: str | None = None, attempts: int = 0,
                  error_type: str | None = None) -> str:
    """The diagram of ``lifecycle`` for a node with ``inputs`` wires in; with ``status`` (a run's),
    the state it is in is filled and the ones it went through outlined (``attempts`` > 1: it
    retried; ``error_type``: how it ended)."""
    ex, stop = lifecycle.execution, lifecycle.exit
    start = ("when it is started" if inputs == 0 else
             f"on {'all' if lifecycle.start.inputs == 'all' else 'any'} of {inputs} input{'s' if inputs != 1 else ''}")
    tries = ex.retries + 1
    run_sub = [f"attempt {max(attempts, 1)} of {tries}" if status else f"{tries} attempt{'s' if tries != 1 else ''}"]
    run_sub += [f"timeout {ex.timeout_s:g} s"] if ex.timeout_s else []
    run_sub += [f"batch {ex.batch_size}"] if ex.batch_size else []
    stops = [f"after {stop.max_items:,} items"] if stop.max_items else []
    stops += [f"after {stop.time_limit_s:g} s"] if stop.time_limit_s else []
    end_title = {"AgentTimeoutError": "Timed out", "MemoryLimitExceeded": "Stopped (memory)"}.get(
        error_type or "", "Cancelled" if status == "cancelled" else "Failed")
    boxes = [
        _Box("start", 10, 20, "Start", start),
        _Box("admit", 160, 20, "Admission", "when its demand fits"),
        _Box("run", 310, 20, "Run", " · ".join(run_sub)),
        _Box("done", 460, 20, "Done", " or ".join(stops) or "when its agent returns"),
        _Box("retry", 310, 110, "Retry", f"after {ex.backoff_s:g} s × {ex.backoff_factor:g}ⁿ" if ex.retries
             else "no retries"),
        _Box("end", 460, 110, end_title, "error, timeout or cancel"),
    ]
    now = STATE.get(status or "")
    seen = _seen(now, attempts, status)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" '
             f'height="{HEIGHT}" font-family="sans-serif">',
             '<defs><marker id="a" viewBox="0 0 8 8" refX="7" refY="4" markerWidth="7" markerHeight="7" '
             f'orient="auto"><path d="M0,0 L8,4 L0,8 z" fill="{MUTED}"/></marker></defs>']
    for a, b, label in (("start", "admit", "ready"), ("admit", "run", "fits"), ("run", "done", "ok"),
                        ("run", "retry", "error"), ("retry", "run", ""), ("run", "end", "")):
        parts.append(_arrow(boxes, a, b, label, a in seen and b in seen))
    for box in boxes:
        parts.append(_box(box, box.key == now, box.key in seen))
    parts.append("</svg>")
    return "".join(parts)


def _seen(now: str | None, attempts: int, status: str | None) -> set[str]:
    if now is None:
        return set()
    seen = set(ORDER[:ORDER.index(now) + 1]) if now in ORDER else {"start", "admit", "run", "end"}
    if status in ("cancelled", "interrupted") and now == "end":
        seen = {"start", "admit", "end"} | ({"run"} if attempts else set())
    if attempts > 1:
        seen |= {"run", "retry"}
    return seen


def _box(box: _Box, current: bool, seen: bool) -> str:
    fill = FILL[box.key] if current else "#ffffff"
    ink = "#ffffff" if current else (INK if seen else MUTED)
    stroke = FILL[box.key] if current or seen else GREY
    sub = escape(box.sub if len(box.sub) <= 28 else box.sub[:27] + "…")
    return (f'<g><title>{escape(box.title)}: {escape(box.sub)}</title>'
            f'<rect x="{box.x}" y="{box.y}" width="{BOX_W}" height="{BOX_H}" rx="7" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="{2.2 if current or seen else 1.2}"/>'
            f'<text x="{box.x + 8}" y="{box.y + 19}" font-size="12" font-weight="600" fill="{ink}">'
            f'{escape(box.title)}</text>'
            f'<text x="{box.x + 8}" y="{box.y + 36}" font-size="9" fill="{ink}">{sub}</text></g>')


def _arrow(boxes: list[_Box], a: str, b: str, label: str, taken: bool) -> str:
    src, dst = next(x for x in boxes if x.key == a), next(x for x in boxes if x.key == b)
    colour, width = (INK, 1.8) if taken else (GREY, 1.2)
    if src.y == dst.y:  # left to right
        x1, y1, x2, y2 = src.x + BOX_W, src.y + BOX_H / 2, dst.x - 2, dst.y + BOX_H / 2
    elif a == "run" and b == "retry":
        x1, y1, x2, y2 = src.x + BOX_W / 2 - 18, src.y + BOX_H, dst.x + BOX_W / 2 - 18, dst.y - 2
    elif a == "retry":
        x1, y1, x2, y2 = src.x + BOX_W / 2 + 18, src.y, dst.x + BOX_W / 2 + 18, dst.y + BOX_H + 2
    else:  # run -> end, down and right
        x1, y1, x2, y2 = src.x + BOX_W, src.y + BOX_H - 8, dst.x - 2, dst.y + 10
    beside = src.y != dst.y  # a vertical arrow is labelled beside it, a horizontal one above it
    text = (f'<text x="{(x1 + x2) / 2 + (4 if beside else 0)}" y="{(y1 + y2) / 2 - 4}" font-size="9" fill="{MUTED}" '
            f'text-anchor="{"start" if beside else "middle"}">{escape(label)}</text>' if label else "")
    return (f'<line x1="{x1}" y1="{y1}" x2="{x2}" y2="{y2}" stroke="{colour}" stroke-width="{width}" '
            f'marker-end="url(#a)"/>{text}')


def node_lifecycle(workflow: dict, node_id: str, registry: object) -> tuple[Lifecycle, int] | None:
    """The lifecycle rules a node of a run's workflow (its dict) ran by, from its agent's defaults
    and its overrides, and how many wires come into it; None for an unknown agent or bad rules."""
    node = next((n for n in workflow.get("nodes") or [] if isinstance(n, dict) and n.get("id") == node_id), None)
    if node is None or str(node.get("agent")) not in registry:  # type: ignore[operator]
        return None
    try:
        rules = registry.get(str(node["agent"])).lifecycle.merged(node.get("lifecycle") or {})  # type: ignore[attr-defined]
    except ValueError:
        return None
    inputs = sum(1 for e in workflow.get("edges") or [] if isinstance(e, dict) and e.get("target") == node_id)
    return rules, inputs
