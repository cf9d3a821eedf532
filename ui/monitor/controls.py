"""Pause, Resume and Step buttons for a live run (the Run page and the designer share them).

A paused run admits no new node; those already running go on. Step starts the next ready node
and stays paused, so a class can walk a run node by node and watch each one start, use its
resources and hand its outputs on (``RunManager.pause`` / ``resume`` / ``step``)."""

from __future__ import annotations

from typing import Any

PAUSE_HELP = "Start no new node (those running finish); Resume goes on, Step starts one node at a time"
STEP_HELP = "Start the next ready node, then stay paused"


def pause_controls(manager: Any, run_id: str, paused: bool, slots: list[Any], key: str) -> None:
    """Pause (or Resume) in ``slots[0]`` and, while paused, Step in ``slots[1]``."""
    if paused:
        slots[0].button("Resume", key=f"{key}.resume", icon=":material/play_arrow:", on_click=_call,
                        args=(manager.resume, run_id), help="Start the waiting nodes again")
        slots[1].button("Step", key=f"{key}.step", icon=":material/skip_next:", on_click=_call,
                        args=(manager.step, run_id), help=STEP_HELP)
    else:
        slots[0].button("Pause", key=f"{key}.pause", icon=":material/pause:", on_click=_call,
                        args=(manager.pause, run_id), help=PAUSE_HELP)


def _call(action: Any, run_id: str) -> None:
    """A button's action on a run that may have ended (or left the manager) since it was drawn."""
    try:
        action(run_id)
    except (KeyError, ValueError):
        pass


def paused_note(ready: int) -> str:
    """The line under a paused run's controls."""
    waiting = f"{ready} node{'s' if ready != 1 else ''} ready to start" if ready else "no node ready yet"
    return (f":material/pause_circle: **Paused**: {waiting}. Step starts the next one; Resume starts them all "
            "(the nodes running when it paused finish).")
