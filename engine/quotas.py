"""Per-user run quotas for shared (lab) servers: at most N concurrent runs and M queued nodes per user.

Pure Python and thread-safe. The UI asks ``check(user, nodes)`` before submitting (a refusal is a
``QuotaExceededError`` with a message a student can act on) and reports ``started``/``finished``;
or it passes ``active_nodes`` computed from ``RunManager`` snapshots. See docs/security.md.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from engine.errors import ServiceGridError

DEFAULT_MAX_RUNS = 2
DEFAULT_MAX_NODES = 200


class QuotaExceededError(ServiceGridError, RuntimeError):
    """A user already has as many runs (or queued nodes) as the lab allows."""


@dataclass(frozen=True)
class QuotaLimits:
    """Per-user limits; a teacher (``exempt``) is never limited."""

    max_concurrent_runs: int = DEFAULT_MAX_RUNS
    max_queued_nodes: int = DEFAULT_MAX_NODES

    @classmethod
    def from_env(cls) -> QuotaLimits:
        """SERVICEGRID_QUOTA_RUNS and SERVICEGRID_QUOTA_NODES, else the defaults."""
        return cls(int(os.environ.get("SERVICEGRID_QUOTA_RUNS", DEFAULT_MAX_RUNS)),
                   int(os.environ.get("SERVICEGRID_QUOTA_NODES", DEFAULT_MAX_NODES)))


class RunQuota:
    """Counts each user's active runs and their unfinished nodes; refuses a submit over the limits.

    Integration with a ``RunManager`` (one quota per server, next to the manager)::

        quota = RunQuota(QuotaLimits.from_env())
        manager.bus.subscribe(quota)                    # RunFinished frees the user's slot
        run_id = uuid.uuid4().hex[:12]
        quota.admit(user, run_id, len(workflow.nodes), exempt=is_teacher)   # may raise
        try:
            manager.submit(workflow, RunOptions(user=user), run_id=run_id)
        except Exception:
            quota.release(run_id)
            raise
    """

    def __init__(self, limits: QuotaLimits | None = None) -> None:
        self.limits = limits or QuotaLimits()
        self._runs: dict[str, tuple[str, int]] = {}  # run id -> (user, nodes)
        self._lock = threading.Lock()

    def check(self, user: str, nodes: int, *, exempt: bool = False) -> None:
        """Raise QuotaExceededError if ``user`` may not start a run of ``nodes`` nodes now."""
        with self._lock:
            refusal = None if exempt else self._refusal(user, nodes)
        if refusal:
            raise QuotaExceededError(refusal)

    def admit(self, user: str, run_id: str, nodes: int, *, exempt: bool = False) -> None:
        """``check`` and, if allowed, count the run as active, in one step (no race between users)."""
        with self._lock:
            refusal = None if exempt else self._refusal(user, nodes)
            if not refusal:
                self._runs[run_id] = (user, nodes)
        if refusal:
            raise QuotaExceededError(refusal)

    def release(self, run_id: str) -> None:
        """Forget a run (finished, failed, cancelled, or refused by the manager)."""
        with self._lock:
            self._runs.pop(run_id, None)

    def on_event(self, event: object) -> None:
        """A run observer: a RunFinished event releases the run's slot."""
        if type(event).__name__ == "RunFinished":
            self.release(event.run_id)  # type: ignore[attr-defined]

    def usage(self, user: str) -> tuple[int, int]:
        """(active runs, queued nodes) of ``user``."""
        with self._lock:
            mine = [n for u, n in self._runs.values() if u == user]
        return len(mine), sum(mine)

    def _refusal(self, user: str, nodes: int) -> str | None:
        mine = [n for u, n in self._runs.values() if u == user]
        if len(mine) >= self.limits.max_concurrent_runs:
            return (f"{user} already has {len(mine)} run(s) going; the lab allows "
                    f"{self.limits.max_concurrent_runs} at once. Wait for one to finish or cancel it.")
        if sum(mine) + nodes > self.limits.max_queued_nodes:
            return (f"this run has {nodes} node(s) and {user} already has {sum(mine)} unfinished; the lab "
                    f"allows {self.limits.max_queued_nodes} at once. Run a smaller workflow or wait.")
        return None
