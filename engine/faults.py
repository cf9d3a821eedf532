"""Fault drills: trouble a node makes on purpose for a lesson (``engine.workflow.FaultSpec``).

Before an attempt runs its agent, ``before_attempt`` fails it when it is one of the first
``fail_attempts`` (retries then show recovery) and waits ``delay_s`` (cancel and the node's timeout
still apply: a timeout shows). ``held_memory`` holds ``extra_memory_mb`` while the agent runs, in
the process that runs it (an isolated node's child, so its memory limit stops it).
"""

from __future__ import annotations

from engine.errors import ServiceGridError
from engine.spec import RunContext
from engine.workflow import FaultSpec

PAGE = 4096


class InjectedFaultError(ServiceGridError, RuntimeError):
    """A failure a node's fault drill made on purpose."""


def before_attempt(drill: FaultSpec | None, attempt: int, ctx: RunContext) -> None:
    """Apply ``drill`` to attempt ``attempt`` (1 = the first) before its agent runs.

    Raises:
        InjectedFaultError: the attempt is one of the first ``fail_attempts``.
        AgentTimeoutError, RunCancelledError: while waiting ``delay_s`` (from ``ctx.wait``).
    """
    if drill is None:
        return
    if attempt <= drill.fail_attempts:
        raise InjectedFaultError(
            f"injected failure: attempt {attempt} is one of the first {drill.fail_attempts} this node's fault "
            "drill fails (turn the drill off in its properties to run it normally)")
    if drill.delay_s:
        ctx.log(f"fault drill: waiting {drill.delay_s:g} s before the agent runs")
        ctx.wait(drill.delay_s)


def held_memory(megabytes: float) -> bytearray | None:
    """``megabytes`` of memory written page by page (so the process really holds it), or None."""
    if megabytes <= 0:
        return None
    block = bytearray(int(megabytes * 2**20))
    block[::PAGE] = b"\x01" * len(range(0, len(block), PAGE))  # touch every page: resident, not just reserved
    return block
