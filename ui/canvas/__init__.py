"""The workflow canvas: our own ``st.components.v2`` component (plain JS/CSS beside this file).

``draw_canvas`` mounts it with the palette, the graph at a Python-owned revision, findings and
run status; it returns what the browser reported (a graph at some revision, a command or None).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import streamlit as st

_ASSETS = files(__name__)
_COMPONENT = st.components.v2.component(
    "servicegrid_canvas",
    js=(_ASSETS / "canvas.js").read_text(encoding="utf-8"),
    css=(_ASSETS / "canvas.css").read_text(encoding="utf-8"),
)


@dataclass(frozen=True)
class CanvasEvent:
    """What the browser sent in this run: its latest graph (with the rev it holds) and a command."""

    graph: dict[str, Any] | None
    command: dict[str, Any] | None


def draw_canvas(
    *,
    palette: list[dict[str, Any]],
    graph: dict[str, Any],
    rev: int,
    kind_colors: dict[str, str],
    issues: dict[str, list[dict[str, Any]]] | None = None,
    status: dict[str, str] | None = None,
    counted: dict[str, str] | None = None,
    fit: bool = False,
    notice: dict[str, Any] | None = None,
    ack: dict[str, Any] | None = None,
    doc: str = "",
    scope: dict[str, Any] | None = None,
    height: int = 560,
    key: str = "sg_canvas",
    on_graph: Callable[[], None] | None = None,
    on_command: Callable[[], None] | None = None,
) -> CanvasEvent:
    """Mount the canvas; ``graph`` is adopted by the browser only when ``rev`` is newer than its own
    and ``ack`` (the last report Python took: ``{sid, seq}``) covers every report it sent.
    ``status`` (node -> run status) and ``counted`` (edge id -> what a run counted along it) are
    drawn over the graph on every draw. ``scope`` (``{workflow, component, instances}``): a
    component is open for editing in place; the canvas draws the path back above the graph."""
    result = _COMPONENT(
        key=key,
        data={
            "palette": palette,
            "graph": graph,
            "rev": rev,
            "kindColors": kind_colors,
            "issues": issues or {},
            "status": status or {},
            "counted": counted or {},
            "fit": fit,
            "notice": notice,
            "ack": ack,
            "doc": doc,
            "scope": scope,
            "height": height,
        },
        height=height,
        on_graph_change=on_graph or _noop,
        on_command_change=on_command or _noop,
    )
    graph_value = _get(result, "graph")
    command_value = _get(result, "command")
    return CanvasEvent(
        graph=graph_value if isinstance(graph_value, dict) else None,
        command=command_value if isinstance(command_value, dict) else None,
    )


def _noop() -> None:
    return None


def canvas_value(name: str, key: str = "sg_canvas") -> Any:
    """In a widget callback: the value ``name`` ("graph" or "command") the browser just sent."""
    value = st.session_state.get(key)
    return _get(value, name) if value is not None else None


def report_ack(report: Any) -> dict[str, Any] | None:
    """What to send back (``draw_canvas(ack=...)``) once a graph report was taken, whatever came
    of it: its canvas's id and sequence number (None for a value without them)."""
    if isinstance(report, dict) and isinstance(report.get("sid"), str) and isinstance(report.get("seq"), int):
        return {"sid": report["sid"][:64], "seq": report["seq"]}
    return None


def _get(result: Any, name: str) -> Any:
    try:
        return result[name]
    except (KeyError, TypeError):
        return getattr(result, name, None)
