"""A workflow's graph as a static SVG picture, laid out as the canvas lays it out: the template
gallery's thumbnails and the run report's graph by node status. Every label is escaped and an
agent's colour must be plain hex; the picture is shown as an image (or inlined in a report), so
nothing in it can run. Pure Python."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from html import escape

from engine.registry import Registry
from engine.workflow import Workflow
from ui.graphmodel import AGENT_COLOR, ensure_positions

_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}")


@dataclass(frozen=True)
class Look:
    """The size of a picture's boxes and labels."""

    box_w: float = 64.0
    box_h: float = 22.0
    pad: float = 8.0
    label_chars: int = 11  # longer labels are cut (the whole one is the box's tooltip)
    font: float = 9.0
    max_scale: float = 0.45  # never drawn larger than this share of the canvas's own size


def safe_color(color: str | None) -> str:
    """An agent's palette colour when it is a plain hex colour (a plugin's is not trusted), else grey."""
    return color if color and _COLOR.fullmatch(color) else AGENT_COLOR


def graph_svg(workflow: Workflow, registry: Registry | None, width: int, height: int, look: Look = Look(),
              fills: Mapping[str, str] | None = None) -> str:
    """A box per node with its agent's colour stripe and its (shortened) label, a curve per link.
    ``fills``: node id -> a box's fill (a run's statuses; plain hex only), white otherwise."""
    laid = ensure_positions(workflow)
    pos = {n.id: (n.position.x, n.position.y) if n.position else (0.0, 0.0) for n in laid.nodes}
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}">',
             f'<rect width="{width}" height="{height}" rx="6" fill="#f8fafc" stroke="#e2e8f0"/>']
    if not pos:
        parts.append(f'<text x="{width / 2}" y="{height / 2}" text-anchor="middle" font-size="11" '
                     'fill="#94a3b8" font-family="sans-serif">empty workflow</text></svg>')
        return "".join(parts)
    xs, ys = [p[0] for p in pos.values()], [p[1] for p in pos.values()]
    span_x, span_y = max(xs) - min(xs), max(ys) - min(ys)
    # one scale for both axes (the layout's shape kept)
    avail_x, avail_y = width - 2 * look.pad - look.box_w, height - 2 * look.pad - look.box_h
    scale = min(avail_x / span_x if span_x else 1.0, avail_y / span_y if span_y else 1.0, look.max_scale)
    off_x = look.pad + (avail_x - span_x * scale) / 2
    off_y = look.pad + (avail_y - span_y * scale) / 2
    at = {nid: (off_x + (x - min(xs)) * scale, off_y + (y - min(ys)) * scale) for nid, (x, y) in pos.items()}
    for edge in laid.edges:
        if edge.source not in at or edge.target not in at:
            continue
        (x1, y1), (x2, y2) = at[edge.source], at[edge.target]
        x1, y1, y2 = x1 + look.box_w, y1 + look.box_h / 2, y2 + look.box_h / 2
        bend = max(12.0, abs(x2 - x1) / 2)
        parts.append(f'<path d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} '
                     f'{x2:.1f},{y2:.1f}" fill="none" stroke="#94a3b8" stroke-width="1.2"/>')
    for node in laid.nodes:
        x, y = at[node.id]
        spec = registry.get(node.agent) if registry is not None and node.agent in registry else None
        stripe = safe_color(spec.color if spec is not None else None)
        fill = (fills or {}).get(node.id)
        fill = fill if fill and _COLOR.fullmatch(fill) else "#ffffff"
        label = node.label or node.id
        short = label if len(label) <= look.label_chars else label[:look.label_chars - 1] + "…"
        parts.append(f'<g><title>{escape(label)}</title>'
                     f'<rect x="{x:.1f}" y="{y:.1f}" width="{look.box_w}" height="{look.box_h}" rx="3" '
                     f'fill="{fill}" stroke="#cbd5e1"/>'
                     f'<rect x="{x:.1f}" y="{y:.1f}" width="4" height="{look.box_h}" rx="1.5" fill="{stripe}"/>'
                     f'<text x="{x + 8:.1f}" y="{y + look.box_h / 2 + look.font * 0.4:.1f}" font-size="{look.font:g}" '
                     f'fill="#334155" font-family="sans-serif">{escape(short)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)
