"""Pause, Resume and Step buttons for a live run (the Run page and the designer share them).

A paused run admits no new node; those already running go on. Step starts the next ready node
and stays paused, so a class can walk a run node by node and watch each one start, use its
resources and hand its outputs on (``RunManager.pause`` / ``resume`` / ``step``)."""

from __future__ import annotations

from typing import Any

from ui.render import code_md, escape_md

IDLE_PAUSED_S = 3.0  # how often a view refreshes a paused run with nothing running: it changes only when someone acts

PAUSE_HELP = "Start no new node (those running finish); Resume goes on, Step starts one node at a time"
STEP_HELP = "Start the next ready node, then stay paused"


def pause_controls(manager: Any, run_id: str, paused: bool, slots: list[Any], key: str) -> None:
    """Pause (or Resume) in ``slots[0]`` and, while paused, Step in ``slots[1]``."""
    if paused:
        slots[0].button("Resume", key=f"{key}.resume", icon=":material/play_arrow:", on_click=_call,
                        args=(manager.resume, run_id),
                        help="Start the waiting nodes again (a failed node the run holds is given up: what "
                             "follows it is skipped)")
        slots[1].button("Step", key=f"{key}.step", icon=":material/skip_next:", on_click=_call,
                        args=(manager.step, run_id), help=STEP_HELP)
    else:
        slots[0].button("Pause", key=f"{key}.pause", icon=":material/pause:", on_click=_call,
                        args=(manager.pause, run_id), help=PAUSE_HELP)


def retry_now(manager: Any, run_id: str, node_id: str) -> bool:
    """Start a failed node the paused run holds again (pause on failure), as one step; False when
    the run no longer holds it (retried already, resumed, ended or gone)."""
    try:
        return bool(manager.retry(run_id, node_id) and manager.step(run_id))
    except (KeyError, ValueError):  # it left the manager
        return False


def _call(action: Any, run_id: str) -> None:
    """A button's action on a run that may have ended (or left the manager) since it was drawn."""
    try:
        action(run_id)
    except (KeyError, ValueError):
        pass


def next_text(ready: list[str], policy: str) -> str:
    """Which node the next Step starts, and what comes after, in the run's policy order."""
    if not ready:
        return "no node is ready yet (the running ones release the next)"
    later = f" (then {', '.join(code_md(n) for n in ready[1:4])}{', …' if len(ready) > 4 else ''})" if ready[1:] else ""
    return f"Step starts {code_md(ready[0])} next{later}, in {code_md(policy)} order"


def breakpoint_why(why: str | None) -> str:
    """" (amount > 500 holds for 3 of 20 rows)": what a conditional breakpoint found, as Markdown
    (the condition is the user's text: escaped)."""
    return f" ({escape_md(why)})" if why else ""


def paused_note(ready: list[str], policy: str, at: str | None = None, why: str | None = None,
                held: dict[str, str] | None = None) -> str:
    """The line under a paused run's controls (``at``: the node whose breakpoint paused it, ``why``:
    what that breakpoint's condition found; ``held``: failed nodes it holds for a retry, with their error)."""
    if held:
        failed = ", ".join(code_md(n) for n in held)
        return (f":material/pause_circle: **Paused**: {failed} failed ({escape_md(next(iter(held.values())))}). "
                "The run holds it and what follows it: change its parameters below and **Retry** it, or Resume "
                "to go on without it (what follows it is skipped).")
    count = f"{len(ready)} node{'s' if len(ready) != 1 else ''} ready to start" if ready else "nothing ready"
    where = f" at the breakpoint before {code_md(at)}{breakpoint_why(why)}" if at else ""
    return (f":material/pause_circle: **Paused**{where}, {count}. {next_text(ready, policy)}; Resume starts them "
            "all (the nodes running when it paused finish).")
