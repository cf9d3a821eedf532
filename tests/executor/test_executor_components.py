"""Runs of workflows with components: each node inside runs and is recorded as itself, with the
instance's parameters; grouping changes nothing a run computes; re-running or disabling an
instance acts on every node inside it."""

from __future__ import annotations

from pathlib import Path

import pytest
from executor_kit import workflow

from engine.errors import WorkflowInvalidError
from engine.events import RunStatus
from engine.grouping import group
from engine.registry import default_registry
from engine.runs import RunOptions
from engine.workflow import load_workflow

ROOT = Path(__file__).resolve().parents[2]
TAGS = {"name": "tags",
        "nodes": [{"id": "a", "agent": "test.tag", "params": {"suffix": "-a"}},
                  {"id": "b", "agent": "test.tag", "params": {"suffix": "-b"}}],
        "edges": [{"source": "a", "target": "b"}],
        "inputs": [{"name": "texts", "node": "a"}], "outputs": [{"name": "texts", "node": "b"}]}


def _tagged(**instance: object):
    return workflow([{"id": "src", "agent": "test.texts", "params": {"n": 2}},
                     {"id": "t", "agent": "component:tags", **instance},
                     {"id": "out", "agent": "test.echo"}], [("src", "t"), ("t", "out")], components=[TAGS])


def test_each_node_inside_runs_with_the_instance_params(manager) -> None:
    m, rec = manager
    run = m.submit(_tagged(params={"b/suffix": "-B"}))
    assert run.wait(10) == RunStatus.SUCCEEDED
    assert m.outputs(run.run_id, "out")["out"]["texts"] == ["item-0-a-B", "item-1-a-B"]
    assert [e.node_id for e in rec.of(run.run_id, "NodeFinished")] == ["src", "t/a", "t/b", "out"]
    started = rec.of(run.run_id, "RunStarted")[0]
    assert started.workflow["metadata"]["components"] == {"t": "tags"}  # the stored run knows the instance


def test_a_grouped_example_computes_what_the_drawn_one_does(manager) -> None:
    m, _ = manager
    drawn = load_workflow(ROOT / "examples" / "customer-service.json")
    grouped, instance = group(drawn, ["intent", "entities", "route"], default_registry(), name="triage")
    first = m.submit(drawn)
    assert first.wait(60) == RunStatus.SUCCEEDED
    second = m.submit(grouped, RunOptions(use_cache=False))
    assert second.wait(60) == RunStatus.SUCCEEDED
    tickets = m.outputs(first.run_id, "route")["tickets"]
    assert m.outputs(second.run_id, f"{instance}/route")["tickets"] == tickets
    assert m.outputs(second.run_id, "priority") == m.outputs(first.run_id, "priority")
    # the cache keys do not depend on ids: the grouped run, cached, reuses the drawn run's results
    third = m.submit(grouped)
    assert third.wait(60) == RunStatus.SUCCEEDED
    done = {k for k, v in third.snapshot().nodes.items() if v["status"] != "cached"}
    assert done == {"all_tickets", "urgent_csv", "other_csv"}  # sinks write again: they are not cached


def test_rerun_of_an_instance_computes_every_node_inside_again(manager) -> None:
    m, rec = manager
    assert m.submit(_tagged()).wait(10) == RunStatus.SUCCEEDED
    again = m.submit(_tagged(), RunOptions(rerun=("t",)))
    assert again.wait(10) == RunStatus.SUCCEEDED
    assert sorted(e.node_id for e in rec.of(again.run_id, "NodeStarted")) == ["out", "t/a", "t/b"]
    assert again.snapshot().nodes["src"]["status"] == "cached"


def test_a_disabled_instance_leaves_out_its_nodes_and_what_follows(manager) -> None:
    m, _ = manager
    run = m.submit(_tagged(disabled=True))
    assert run.wait(10) == RunStatus.SUCCEEDED
    assert list(run.snapshot().nodes) == ["src"]


def test_a_broken_component_is_refused_before_anything_runs(manager) -> None:
    m, rec = manager
    with pytest.raises(WorkflowInvalidError, match=r"unknown_component.*no component named 'tagz'"):
        m.submit(workflow([{"id": "src", "agent": "test.texts"}, {"id": "t", "agent": "component:tagz"}],
                          [("src", "t")], components=[TAGS]))
    assert not rec.events
