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
from typing import Any

from engine.components import expand_components
from engine.registry import Registry
from engine.workflow import Workflow
from ui.graph_svg import graph_svg

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
    runs = expand_components(workflow)[0]  # the agents inside its components count too
    for node in runs.nodes:
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
        description=workflow.description.strip(), n_agents=len(runs.nodes), n_links=len(workflow.edges),
        families=tuple(families), agents=tuple(agents), preview_svg=preview_svg(workflow, registry))


def _nodes_line(workflow: Workflow, most: int = 6) -> str:
    """What a template without a description holds: its nodes, in file order."""
    names = [n.label or n.id for n in workflow.nodes]
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return f"Nodes: {', '.join(names[:most])}{more}." if names else "An empty workflow."


def preview_svg(workflow: Workflow, registry: Registry, width: int = PREVIEW_W, height: int = PREVIEW_H) -> str:
    """A thumbnail of the graph as the canvas lays it out (``ui.graph_svg``): a box per node with
    its agent's colour stripe and its shortened, escaped label, a curve per link."""
    return graph_svg(workflow, registry, width, height)



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
    return f"Last run here: {run.status}{took}, {ago(now - run.created)}."


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min"


def ago(seconds: float) -> str:
    """"5 min ago", "2 hours ago", "just now"."""
    seconds = max(0.0, seconds)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "min")):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 and unit != 'min' else ''} ago"
    return "just now"
