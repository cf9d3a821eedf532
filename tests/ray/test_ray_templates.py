"""Every template in examples/ gives the same outputs on Ray as on the local backend."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from engine.components import flatten
from engine.events import Event, RunStatus
from engine.registry import default_registry
from engine.workflow import load_workflow

pytestmark = [pytest.mark.ray, pytest.mark.slow]
EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.json"))
TIME_SCALE = 0.001


def comparable(value: Any) -> Any:
    """Outputs as plain data (tensors and arrays as lists) so the two backends can be compared."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [comparable(v) for v in value]
    return value


def local_outputs(path: Path) -> tuple[RunStatus, dict[str, Any]]:
    from engine.runs import RunManager, RunOptions

    wf = load_workflow(path)
    manager = RunManager()
    try:
        handle = manager.submit(wf, RunOptions(time_scale=TIME_SCALE, use_cache=False, predict=False))
        status = handle.wait(240)
        ran = flatten(wf).node_ids()  # a component's nodes run (and give outputs) one by one
        return status, {n: handle.outputs(n) for n in ran if handle.outputs(n) is not None}
    finally:
        manager.shutdown()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_template_outputs_match_the_local_backend(path: Path, backend: Any) -> None:
    # both backends write sinks under the session data folder: Ray workers inherit that environment
    pytest.importorskip("engine.runs")
    events: list[Event] = []
    status, outputs = backend.execute(f"tpl-{path.stem}", load_workflow(path), default_registry(),
                                      events.append, threading.Event(), time_scale=TIME_SCALE)
    local_status, local = local_outputs(path)
    assert status == local_status == RunStatus.SUCCEEDED, [e for e in events if e.kind == "NodeFailed"]
    assert comparable(outputs) == comparable(local)
