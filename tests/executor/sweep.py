"""Checks over recorded events: a sweep line for over-commit, parents-before-children."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from engine.events import Event, NodeStarted
from engine.resources import EPS, ResourceDemand, ResourceLedger

TERMINAL_KINDS = {"NodeFinished", "NodeFailed", "NodeCancelled", "NodeSkipped"}


def max_usage(events: Iterable[Event], per_run: bool = False) -> dict[str, float]:
    """Peak use per resource key (``run:key`` when ``per_run``) over the event order."""
    used: dict[str, float] = defaultdict(float)
    peak: dict[str, float] = defaultdict(float)
    holding: dict[tuple[str, str], dict[str, float]] = {}
    for e in events:
        node = (e.run_id, e.node_id or "")
        if isinstance(e, NodeStarted):
            need = ResourceLedger.needs(ResourceDemand.model_validate(e.demand), e.device)
            need = {(f"{e.run_id}:{k}" if per_run else k): v for k, v in need.items()}
            holding[node] = need
            for k, v in need.items():
                used[k] += v
                peak[k] = max(peak[k], used[k])
        elif e.kind in TERMINAL_KINDS and node in holding:
            for k, v in holding.pop(node).items():
                used[k] -= v
    return dict(peak)


def assert_within(peak: dict[str, float], totals: dict[str, float]) -> None:
    for key, amount in peak.items():
        assert amount <= totals[key] + EPS, f"{key} over-committed: {amount} > {totals[key]}"
