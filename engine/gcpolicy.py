"""Fewer full garbage collections while runs execute.

A run's state is many long-lived objects made at once (a 10,000-node workflow: ~150,000 dicts,
lists, pydantic models and node states). CPython starts a full (generation-2) collection once
enough objects have survived into the old generation, and a full collection scans the whole
heap: in the middle of a 10,000-node no-op run it cost 6-8 us per node, a third of the
executor's own cost, and freed nothing (the run's state is alive). While at least one run is
active in this process the generation-2 threshold is ``FACTOR`` times its value (10 gen-1
collections per full collection become 100); when the last run ends it is put back, so the
deferred collections happen between runs. Generations 0 and 1 are unchanged, so short-lived
garbage goes as before. Process-wide (the collector is), counted over every executor.
"""

from __future__ import annotations

import gc
import threading

FACTOR = 10
_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] | None = None
_ours: tuple[int, int, int] | None = None


def run_started() -> None:
    """A run began executing (pair with ``run_ended``)."""
    global _active, _saved, _ours
    with _lock:
        _active += 1
        if _active == 1:
            t0, t1, t2 = gc.get_threshold()
            _saved, _ours = (t0, t1, t2), (t0, t1, t2 * FACTOR)
            gc.set_threshold(*_ours)


def run_ended() -> None:
    """A run finished; the last one restores the threshold (unless someone changed it since)."""
    global _active, _saved, _ours
    with _lock:
        _active = max(0, _active - 1)
        if _active == 0 and _saved is not None:
            if gc.get_threshold() == _ours:
                gc.set_threshold(*_saved)
            _saved = _ours = None


def active_runs() -> int:
    return _active
