"""The template gallery's cards: what a template holds, a small picture of its graph, how it last ran.

Pure Python (no Streamlit): ``ui.designer_files.template_gallery`` draws the cards. A card says
what a person deciding which template to open wants to know before opening it: a title, the first
sentence of the description (the rest on demand), how many agents and of which families (vision,
text, tabular...), whether it is simulated, a thumbnail of the graph in the canvas's colours, and
when it last ran on this server, with what outcome and how long it took.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from html import escape
from typing import Any

from engine.registry import Registry
from engine.workflow import Workflow
from ui.graphmodel import AGENT_COLOR, ensure_positions

# Families a person picks templates by, in the order the filter shows them; flow utilities and the
# test agents are not a family (every template has flow nodes).
FAMILIES: dict[str, str] = {
    "vision": "vision",
    "text": "text",
    "tabular": "tabular",
    "decision": "decision",
    "recommendation": "recommendation",
    "custom": "your model",
    "simulation": "simulated",
}
SUMMARY_CHARS = 220
PREVIEW_W, PREVIEW_H = 360, 150
_BOX_W, _BOX_H, _PAD = 64.0, 22.0, 8.0
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z(])")


@dataclass(frozen=True)
class TemplateCard:
    """One template as the gallery shows it (text fields are raw: the renderer escapes them)."""

    stem: str
    title: str
    summary: str
    description: str
    n_agents: int
    n_links: int
    families: tuple[str, ...]
    agents: tuple[str, ...]
    preview_svg: str

    @property
    def simulated(self) -> bool:
        return FAMILIES["simulation"] in self.families

    def matches(self, wanted: set[str]) -> bool:
        """Whether the card belongs to one of the families ``wanted`` (an empty set = all)."""
        return not wanted or bool(wanted & set(self.families))


def template_title(workflow: Workflow, stem: str) -> str:
    """``metadata.title`` when the template gives one, else its name made readable."""
    title = workflow.metadata.get("title")
    if isinstance(title, str) and title.strip():
        return title.strip()
    words = (workflow.name or stem).replace("_", "-").split("-")
    return " ".join(w for w in words if w).capitalize() or stem


def summary_of(description: str, limit: int = SUMMARY_CHARS) -> str:
    """The description's first sentence, cut at a word (with an ellipsis) when it is long."""
    text = " ".join(description.split())
    if not text:
        return ""
    first = _SENTENCE.split(text, maxsplit=1)[0]
    if len(first) <= limit:
        return first
    cut = first[: limit - 1].rsplit(" ", 1)[0].rstrip(",;:")
    return cut + "…"


def template_card(stem: str, workflow: Workflow, registry: Registry) -> TemplateCard:
    families: list[str] = []
    agents: list[str] = []
    for node in workflow.nodes:
        spec = registry.get(node.agent) if node.agent in registry else None
        category = spec.category if spec is not None else ""
        family = FAMILIES.get(category)
        if family and family not in families:
            families.append(family)
        label = (spec.label or spec.name) if spec is not None else node.agent
        if label not in agents:
            agents.append(label)
    families.sort(key=list(FAMILIES.values()).index)
    return TemplateCard(
        stem=stem, title=template_title(workflow, stem),
        summary=summary_of(workflow.description) or _nodes_line(workflow),
        description=workflow.description.strip(), n_agents=len(workflow.nodes), n_links=len(workflow.edges),
        families=tuple(families), agents=tuple(agents), preview_svg=preview_svg(workflow, registry))


def _nodes_line(workflow: Workflow, most: int = 6) -> str:
    """What a template without a description holds: its nodes, in file order."""
    names = [n.label or n.id for n in workflow.nodes]
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return f"Nodes: {', '.join(names[:most])}{more}." if names else "An empty workflow."


def preview_svg(workflow: Workflow, registry: Registry, width: int = PREVIEW_W, height: int = PREVIEW_H) -> str:
    """A thumbnail of the graph as the canvas lays it out: a box per node with its agent's colour
    stripe and its (shortened, escaped) label, a curve per link. Static SVG, shown as an image, so
    nothing in it can run."""
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
    # one scale for both axes (the layout's shape kept), never enlarged past the canvas's own size
    avail_x, avail_y = width - 2 * _PAD - _BOX_W, height - 2 * _PAD - _BOX_H
    scale = min(avail_x / span_x if span_x else 1.0, avail_y / span_y if span_y else 1.0, 0.45)
    off_x = _PAD + (avail_x - span_x * scale) / 2
    off_y = _PAD + (avail_y - span_y * scale) / 2
    at = {nid: (off_x + (x - min(xs)) * scale, off_y + (y - min(ys)) * scale) for nid, (x, y) in pos.items()}
    for edge in laid.edges:
        if edge.source not in at or edge.target not in at:
            continue
        (x1, y1), (x2, y2) = at[edge.source], at[edge.target]
        x1, y1, y2 = x1 + _BOX_W, y1 + _BOX_H / 2, y2 + _BOX_H / 2
        bend = max(12.0, abs(x2 - x1) / 2)
        parts.append(f'<path d="M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} {x2 - bend:.1f},{y2:.1f} '
                     f'{x2:.1f},{y2:.1f}" fill="none" stroke="#94a3b8" stroke-width="1.2"/>')
    for node in laid.nodes:
        x, y = at[node.id]
        spec = registry.get(node.agent) if node.agent in registry else None
        color = _safe_color(spec.color if spec is not None else None)
        label = node.label or node.id
        short = label if len(label) <= 11 else label[:10] + "…"
        parts.append(f'<g><title>{escape(label)}</title>'
                     f'<rect x="{x:.1f}" y="{y:.1f}" width="{_BOX_W}" height="{_BOX_H}" rx="3" fill="#ffffff" '
                     f'stroke="#cbd5e1"/>'
                     f'<rect x="{x:.1f}" y="{y:.1f}" width="4" height="{_BOX_H}" rx="1.5" fill="{color}"/>'
                     f'<text x="{x + 8:.1f}" y="{y + _BOX_H / 2 + 3.5:.1f}" font-size="9" fill="#334155" '
                     f'font-family="sans-serif">{escape(short)}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}")


def _safe_color(color: str | None) -> str:
    """An agent's palette colour when it is a plain hex colour (a plugin's is not trusted), else grey."""
    return color if color and _COLOR.fullmatch(color) else AGENT_COLOR


def last_runs(runs: list[Any]) -> dict[str, Any]:
    """The newest run of each workflow name, from the store's run list (``RunSummary`` rows)."""
    newest: dict[str, Any] = {}
    for run in runs:
        have = newest.get(run.workflow_name)
        if have is None or run.created > have.created:
            newest[run.workflow_name] = run
    return newest


def last_run_line(run: Any | None, now: float) -> str:
    """"Last run here: succeeded in 0.4 s, 5 min ago" (or never run here)."""
    if run is None:
        return "Not run on this server yet."
    took = f" in {_duration(run.duration_s)}" if run.duration_s is not None else ""
    return f"Last run here: {run.status}{took}, {_ago(now - run.created)}."


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "min")):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 and unit != 'min' else ''} ago"
    return "just now"
