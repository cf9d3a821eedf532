"""Measured figures per agent from the stored runs (how many runs, median and p95 wall time, p95
of its own memory, devices seen, and measured ÷ declared time), for the Agents page to show next to each
agent's declarations.

Measured ÷ declared compares each execution with what was declared for that execution: the
agent's time for the node's parameters and the items planned for it in its run
(``AgentSpec.expected_duration``, ``engine.items``), so a 4,096-image run is not held against a
declaration for 64 images."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from engine.estimates import MIN_RUNS, Stat, node_memory_mb
from engine.items import declared_durations
from engine.registry import Registry
from engine.spec import AgentSpec
from ui import auth
from ui.services import get_registry, get_store

RECENT_RUNS = 200
CACHE_TTL_S = 15


@dataclass(frozen=True)
class AgentFigures:
    """What one agent measured over recent runs (seconds, MB; simulated agents in agent time)."""

    agent: str
    runs: int  # runs the agent finished at least one node in
    executions: int  # finished, not cached node executions
    wall: Stat
    memory: Stat | None  # the node's own memory (engine.estimates.node_memory_mb)
    isolated: int  # executions that ran in their own process (their memory figure is their own)
    devices: tuple[str, ...]
    declared: Stat | None = None  # the declared time of each execution (its params and planned items)
    ratio: Stat | None = None  # measured ÷ declared time, per execution

    @property
    def verdict(self) -> str | None:
        """Whether the declaration holds: ``within``, ``slower`` (it ran ``SLOWER_BY`` times its
        declaration or more: plans are optimistic, timeouts tight) or ``faster`` (``FASTER_BY``
        times or more under it: plans are needlessly pessimistic); None when not compared."""
        if self.ratio is None or self.ratio.median <= 0:
            return None
        if self.ratio.median >= SLOWER_BY:
            return "slower"
        return "faster" if self.ratio.median <= 1 / FASTER_BY else "within"


# Declarations are meant to be on the safe side: the built-in agents declare 3.5-5x their quiet
# per-item time, so a plan still holds on a loaded machine (bench/agents_bench.py). So running
# slower than declared is flagged sooner than running faster.
SLOWER_BY = 2.0
FASTER_BY = 5.0


def declared_times(detail: Any, registry: Registry) -> dict[str, float]:
    """Node id -> the time declared for it in this stored run: its agent's expected time for the
    node's parameters and the items planned for it (``engine.items.declared_durations``)."""
    workflow = getattr(detail, "workflow", None)
    return declared_durations(workflow, registry) if isinstance(workflow, dict) else {}


def figures_from_runs(details: Iterable[Any], simulated: Callable[[str], bool],
                      registry: Registry | None = None) -> dict[str, AgentFigures]:
    """Per-agent figures from stored runs (storage RunDetail objects): done, not cached nodes only.
    With a ``registry``, each execution is also compared with its declaration (``declared_times``)."""
    walls: dict[str, list[float]] = {}
    declared: dict[str, list[float]] = {}
    ratios: dict[str, list[float]] = {}
    memory: dict[str, list[float]] = {}
    runs: dict[str, set[str]] = {}
    devices: dict[str, set[str]] = {}
    isolated: dict[str, int] = {}
    for detail in details:
        scale = float((detail.options or {}).get("time_scale") or 1.0)
        promised = declared_times(detail, registry) if registry is not None else {}
        for node in detail.nodes:
            if node.status != "done" or node.cached or node.wall_s is None:
                continue
            wall = float(node.wall_s)
            if simulated(node.agent) and scale > 0:
                wall /= scale  # a simulated agent waits duration × time scale
            walls.setdefault(node.agent, []).append(wall)
            if (expected := promised.get(getattr(node, "node_id", ""))) is not None and expected > 0:
                declared.setdefault(node.agent, []).append(expected)
                ratios.setdefault(node.agent, []).append(wall / expected)
            runs.setdefault(node.agent, set()).add(detail.id)
            own = node_memory_mb({"metrics": node.metrics or {}, "peak_rss_mb": node.peak_rss_mb})
            if own is not None:
                memory.setdefault(node.agent, []).append(own)
            if node.device:
                devices.setdefault(node.agent, set()).add(node.device)
            isolated[node.agent] = isolated.get(node.agent, 0) + bool((node.metrics or {}).get("isolated"))
    return {agent: AgentFigures(agent, len(runs[agent]), len(xs), Stat.of(xs),
                                Stat.of(memory[agent]) if agent in memory else None, isolated.get(agent, 0),
                                tuple(sorted(devices.get(agent, ()))),
                                Stat.of(declared[agent]) if agent in declared else None,
                                Stat.of(ratios[agent]) if agent in ratios else None)
            for agent, xs in walls.items()}


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _cached_figures(database: str, user: str | None) -> dict[str, AgentFigures]:
    store, registry = get_store(), get_registry()
    details = (store.get_run(s.id) for s in store.list_runs(user=user, limit=RECENT_RUNS))

    def simulated(name: str) -> bool:
        return name in registry and registry.get(name).simulated

    return figures_from_runs((d for d in details if d is not None), simulated, registry)


def measured_figures() -> dict[str, AgentFigures]:
    """Figures of every agent over the signed-in user's recent runs (cached a few seconds per
    database and user, so one page view reads the store once)."""
    store = get_store()
    return _cached_figures(str(getattr(store, "url", id(store))), auth.owner_filter(auth.current_user()))


def describe_figures(spec: AgentSpec, fig: AgentFigures | None) -> list[str]:
    """Markdown lines comparing the declarations with the measurements."""
    if fig is None:
        return ["Not measured yet: run a workflow with this agent and its figures appear here."]
    unit = " (agent time: divided by each run's time scale)" if spec.simulated else ""
    lines = [f"Wall time: declared {spec.duration_text()} (default parameters) / measured median {fig.wall.median:.3g} s, "
             f"p95 {fig.wall.p95:.3g} s over {fig.runs} run(s), {fig.executions} execution(s){unit}"]
    if fig.ratio is not None:
        lines.append(f"Measured ÷ declared: median ×{fig.ratio.median:.2g} (from ×{fig.ratio.low:.2g} to "
                     f"×{fig.ratio.high:.2g}), each execution against what was declared for its parameters and "
                     "planned items" + (" and image sizes" if spec.per_image_fn is not None else ""))
        if fig.verdict in ("slower", "faster"):
            factor = fig.ratio.median
            what = ("the time its `duration_fn` / `per_item_fn` computes"
                    if spec.duration_fn is not None or spec.per_item_fn is not None
                    else "`expected_duration_s`" + (" and `per_item_s`" if spec.per_item_s else ""))
            if spec.per_image_fn is not None:
                what += " (and what `per_image_fn` adds per image, if the gap grows with the images' size)"
            lines.append(f"**The declaration needs correcting**: it runs {fig.verdict} than declared (×{factor:.2g}). "
                         f"Multiply {what} by about {factor:.2g} in the agent's declaration. Meanwhile the planner "
                         f"uses the measured time for a node once it has {MIN_RUNS} runs of it (learned durations).")
    if fig.memory is not None:
        note = ("every execution ran isolated: how far its own process grew" if fig.isolated == fig.executions
                else "how far the process's memory rose while it ran (read at each batch and 4 times a second; "
                     "at least what its outputs hold; nodes running at the same time share the count"
                     + (f"; {fig.isolated} of {fig.executions} executions ran isolated: their process's peak"
                        if fig.isolated else "") + ")")
        lines.append(f"Memory: declared {spec.resources.memory_mb:,.0f} MB / measured p95 "
                     f"{fig.memory.p95:,.0f} MB over {fig.memory.count} execution(s) — {note}")
    lines.append("Devices seen: " + (", ".join(f"`{d}`" for d in fig.devices) or "none recorded"))
    return lines
