"""Run workflows for real into a store, for the tests that read stored runs back (learned
estimates, the Agents page's figures, the lab, the run form)."""

from __future__ import annotations

from collections.abc import Iterable

from engine.runs import RunManager, RunOptions
from engine.workflow import Workflow
from storage import Store


def record_runs(store: Store, manager: RunManager, workflows: Iterable[Workflow], options: RunOptions,
                timeout: float = 30.0) -> list[str]:
    """Run each workflow in turn on ``manager``, observed by ``store``; each must succeed. The store
    is flushed and the manager shut down; the store stays open (the caller's). Returns the run ids
    in the order the runs were made."""
    manager.bus.subscribe(store.observer())
    try:
        ids = []
        for workflow in workflows:
            handle = manager.submit(workflow, options)
            assert handle.wait(timeout).value == "succeeded", handle.snapshot().nodes
            ids.append(str(handle.run_id))
        assert store.flush(10)
        return ids
    finally:
        manager.shutdown()
