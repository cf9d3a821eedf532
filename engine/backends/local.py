"""The local backend: agents run on the executor's worker threads, or in a child process when a
node asks for isolation. Loaded agents stay warm in an LRU keyed by (agent, version, params,
device) and are evicted, least recently used first, when the memory budget would be exceeded.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.spec import Agent, AgentSpec, RunContext

WarmKey = tuple[str, str, str, str]  # agent name, version, canonical params JSON, device


@dataclass(slots=True)
class NodeCall:
    """One attempt of one node, as the backend sees it."""

    spec: AgentSpec
    params: BaseModel
    params_json: str
    inputs: dict[str, Any]
    ctx: RunContext
    footprint_mb: float = 0.0
    isolate: bool = False
    scratch: Path | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    hold_mb: float = 0.0  # isolated only: a fault drill's extra memory, held in the child (engine.faults)


class WarmPool:
    """Idle loaded agents by key; an agent is lent to one node at a time (agents need not be
    thread-safe). Footprint = the demand's ``memory_mb``; idle agents are unloaded LRU-first
    when loaded footprints exceed ``budget_mb``."""

    def __init__(self, budget_mb: float) -> None:
        self.budget_mb = budget_mb
        self._idle: OrderedDict[WarmKey, list[tuple[Agent, float]]] = OrderedDict()
        self._lock = threading.Lock()
        self.loaded_mb = 0.0
        self.loads = 0
        self.evictions = 0

    def checkout(self, key: WarmKey, spec: AgentSpec, params: BaseModel, footprint_mb: float) -> Agent:
        with self._lock:
            idle = self._idle.get(key)
            if idle:
                return idle.pop()[0]  # an emptied list stays (checkin refills it; eviction drops it)
            self.loaded_mb += footprint_mb
            self.loads += 1
            victims = self._evict_locked()
        _unload(victims)
        try:
            agent = spec.build(params)
            agent.load(key[3])
        except BaseException:
            with self._lock:
                self.loaded_mb -= footprint_mb
            raise
        return agent

    def checkin(self, key: WarmKey, agent: Agent, footprint_mb: float) -> None:
        with self._lock:
            idle = self._idle.get(key)
            if idle is None:
                self._idle[key] = [(agent, footprint_mb)]
            else:
                idle.append((agent, footprint_mb))
                self._idle.move_to_end(key)
            if self.loaded_mb <= self.budget_mb + 1e-9:
                return  # nothing to evict (the common case)
            victims = self._evict_locked()
        _unload(victims)

    def discard(self, agent: Agent, footprint_mb: float) -> None:
        """Drop an agent that failed (it may be in a bad state)."""
        with self._lock:
            self.loaded_mb -= footprint_mb
        _unload([agent])

    def _evict_locked(self) -> list[Agent]:
        victims = []
        while self.loaded_mb > self.budget_mb + 1e-9 and self._idle:
            key, idle = next(iter(self._idle.items()))
            if not idle:  # every agent of this key is lent out
                del self._idle[key]
                continue
            agent, mb = idle.pop(0)
            if not idle:
                del self._idle[key]
            self.loaded_mb -= mb
            self.evictions += 1
            victims.append(agent)
        return victims

    def keys(self) -> list[WarmKey]:
        with self._lock:
            return [key for key, idle in self._idle.items() if idle]

    def clear(self) -> None:
        with self._lock:
            victims = [a for idle in self._idle.values() for a, _ in idle]
            self._idle.clear()
            self.loaded_mb = 0.0
        _unload(victims)


def _unload(agents: list[Agent]) -> None:
    for agent in agents:
        try:
            agent.unload()
        except Exception:  # unloading is best effort
            pass


class LocalBackend:
    """Runs agents in-thread (warm pool) or isolated in a child process."""

    name = "local"

    def __init__(self, memory_budget_mb: float = 1024.0) -> None:
        self.warm = WarmPool(memory_budget_mb)
        self._ran: set[str] = set()  # agents that ran in this process (in-thread)

    def call(self, job: NodeCall) -> dict[str, Any]:
        if job.isolate:
            from engine.isolation import run_isolated

            assert job.scratch is not None, "isolated calls need a scratch folder"
            return run_isolated(job.spec, job.params, job.inputs, job.ctx, job.scratch, job.stats,
                                declared_memory_mb=job.footprint_mb, hold_mb=job.hold_mb)
        spec, ctx, warm = job.spec, job.ctx, self.warm
        if spec.name not in self._ran:  # its first run here pays for its imports and first model loads
            self._ran.add(spec.name)
            job.stats["cold"] = True
        key = (spec.name, spec.version, job.params_json, ctx.device)
        agent = warm.checkout(key, spec, job.params, job.footprint_mb)
        try:
            outputs = agent.run(job.inputs, ctx)
        except BaseException:
            warm.discard(agent, job.footprint_mb)
            raise
        warm.checkin(key, agent, job.footprint_mb)
        return outputs if outputs is not None else {}

    def close(self) -> None:
        self.warm.clear()
