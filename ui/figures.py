"""Measured figures per agent from the stored runs (how many runs, median and p95 wall time, p95
peak memory, devices seen), for the Agents page to show next to each agent's declarations."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import streamlit as st

from engine.estimates import Stat
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
    memory: Stat | None  # peak RSS of the process while the node ran
    isolated: int  # executions that ran in their own process (their memory figure is their own)
    devices: tuple[str, ...]


def figures_from_runs(details: Iterable[Any], simulated: Callable[[str], bool]) -> dict[str, AgentFigures]:
    """Per-agent figures from stored runs (storage RunDetail objects): done, not cached nodes only."""
    walls: dict[str, list[float]] = {}
    memory: dict[str, list[float]] = {}
    runs: dict[str, set[str]] = {}
    devices: dict[str, set[str]] = {}
    isolated: dict[str, int] = {}
    for detail in details:
        scale = float((detail.options or {}).get("time_scale") or 1.0)
        for node in detail.nodes:
            if node.status != "done" or node.cached or node.wall_s is None:
                continue
            wall = float(node.wall_s)
            if simulated(node.agent) and scale > 0:
                wall /= scale  # a simulated agent waits duration × time scale
            walls.setdefault(node.agent, []).append(wall)
            runs.setdefault(node.agent, set()).add(detail.id)
            if node.peak_rss_mb is not None:
                memory.setdefault(node.agent, []).append(float(node.peak_rss_mb))
            if node.device:
                devices.setdefault(node.agent, set()).add(node.device)
            isolated[node.agent] = isolated.get(node.agent, 0) + bool((node.metrics or {}).get("isolated"))
    return {agent: AgentFigures(agent, len(runs[agent]), len(xs), Stat.of(xs),
                                Stat.of(memory[agent]) if agent in memory else None, isolated.get(agent, 0),
                                tuple(sorted(devices.get(agent, ()))))
            for agent, xs in walls.items()}


@st.cache_data(ttl=CACHE_TTL_S, show_spinner=False)
def _cached_figures(database: str, user: str | None) -> dict[str, AgentFigures]:
    store, registry = get_store(), get_registry()
    details = (store.get_run(s.id) for s in store.list_runs(user=user, limit=RECENT_RUNS))

    def simulated(name: str) -> bool:
        return name in registry and registry.get(name).simulated

    return figures_from_runs((d for d in details if d is not None), simulated)


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
    lines = [f"Wall time: declared {spec.duration_text()} (agent default) / measured median {fig.wall.median:.3g} s, "
             f"p95 {fig.wall.p95:.3g} s over {fig.runs} run(s), {fig.executions} execution(s){unit}"]
    if fig.memory is not None:
        note = ("every execution ran isolated, so this is the node's own peak" if fig.isolated == fig.executions
                else "process-wide peak RSS while the node ran (a node's own only when it runs isolated"
                     + (f"; {fig.isolated} of {fig.executions} did" if fig.isolated else "") + ")")
        lines.append(f"Peak memory: declared {spec.resources.memory_mb:,.0f} MB / measured p95 "
                     f"{fig.memory.p95:,.0f} MB — {note}")
    lines.append("Devices seen: " + (", ".join(f"`{d}`" for d in fig.devices) or "none recorded"))
    return lines
