"""Pinned outputs (n8n's pinned data, Langflow's frozen path): a pinned node takes its outputs from
the result cache, the nodes that only feed it are not run, and what it feeds sees the pinned value
even after the upstream changed."""

from __future__ import annotations

import pytest
from executor_kit import workflow

from engine.errors import PinError, WorkflowInvalidError
from engine.events import RunStatus
from engine.registry import default_registry
from engine.results import pin_from_run
from engine.runs import RunOptions
from engine.validation import validate
from engine.workflow import Workflow, dump_workflow, load_workflow, pinned_only_feeders, with_pin

# a -> b -> c, and a -> side (a feeds a node besides the pinned one)
NODES = [{"id": "a", "agent": "test.source", "params": {"value": [1, 2, 3]}},
         {"id": "b", "agent": "test.echo"},
         {"id": "c", "agent": "test.echo"}]
EDGES = [("a", "b"), ("b", "c")]


def _pinned(m, wf: Workflow, run_id: str, node: str) -> Workflow:
    return with_pin(wf, node, pin_from_run(m.workflow(run_id), node, run_id, default_registry(), m.results))


def test_a_pinned_node_keeps_its_output_when_the_upstream_changes(manager) -> None:
    m, rec = manager
    wf = workflow(NODES, EDGES)
    first = m.submit(wf)
    assert first.wait(10) == RunStatus.SUCCEEDED
    pinned = _pinned(m, wf, first.run_id, "b")
    assert pinned.node("b").pin.run_id == first.run_id
    # change the source: without the pin, b and c would compute from [9]
    changed = pinned.model_copy(update={"nodes": (
        pinned.nodes[0].model_copy(update={"params": {"value": [9]}}), *pinned.nodes[1:])})
    run = m.submit(changed)
    assert run.wait(10) == RunStatus.SUCCEEDED
    assert m.outputs(run.run_id, "c") == {"out": [1, 2, 3]}  # c ran on b's pinned output
    # a is not run and b is read from its pin; c's cache key follows b's pin, so c is a cache hit
    assert not rec.of(run.run_id, "NodeStarted")
    nodes = run.snapshot().nodes
    assert nodes["b"]["status"] == "cached" and nodes["b"]["pinned"] and nodes["b"]["metrics"]["device"] == "pinned"
    assert nodes["a"]["status"] == "skipped" and "only feed pinned" in nodes["a"]["reason"]
    # the stale pin is a warning, never an error
    issues = validate(changed, default_registry())
    assert [(i.code, i.node, i.severity) for i in issues] == [("pin_stale", "b", "warning")]
    assert first.run_id in issues[0].message
    assert not [i for i in validate(pinned, default_registry()) if i.code == "pin_stale"]


def test_a_node_feeding_a_pinned_node_and_another_still_runs(manager) -> None:
    m, rec = manager
    wf = workflow([*NODES, {"id": "side", "agent": "test.echo"}], [*EDGES, ("a", "side")])
    first = m.submit(wf)
    assert first.wait(10) == RunStatus.SUCCEEDED
    pinned = _pinned(m, wf, first.run_id, "b")
    assert pinned_only_feeders(pinned) == set()
    run = m.submit(pinned, RunOptions(use_cache=False))  # a pin is read even with the cache off
    assert run.wait(10) == RunStatus.SUCCEEDED
    assert sorted(e.node_id for e in rec.of(run.run_id, "NodeStarted")) == ["a", "c", "side"]
    assert run.snapshot().nodes["b"]["status"] == "cached"


def test_feeders_of_pinned_nodes_only(manager) -> None:
    def graph(edges: list[tuple[str, str]], pins: str) -> Workflow:
        ids = sorted({x for e in edges for x in e})
        return workflow([{"id": i, "agent": "test.echo", **({"pin": {"key": "0" * 32}} if i in pins else {})}
                         for i in ids], edges)

    assert pinned_only_feeders(graph([("a", "b"), ("b", "c"), ("c", "d")], "c")) == {"a", "b"}
    assert pinned_only_feeders(graph([("a", "b"), ("b", "c"), ("a", "e")], "b")) == set()
    # a pinned node that only feeds pinned nodes is not needed either
    assert pinned_only_feeders(graph([("a", "b"), ("b", "c")], "bc")) == {"a", "b"}
    assert pinned_only_feeders(graph([("a", "b"), ("b", "c")], "")) == set()


def test_a_pin_whose_output_is_gone_is_refused_before_the_run(manager, tmp_path) -> None:
    m, _ = manager
    wf = workflow(NODES, EDGES)
    first = m.submit(wf)
    first.wait(10)
    pinned = _pinned(m, wf, first.run_id, "b")
    gone = with_pin(pinned, "b", pinned.node("b").pin.model_copy(update={"key": "f" * 32}))
    with pytest.raises(WorkflowInvalidError) as err:
        m.submit(gone)
    (issue,) = [i for i in err.value.issues if i.is_error]
    assert issue.code == "pin_missing" and issue.node == "b" and "unpin" in issue.hint


def test_an_unreadable_pinned_output_fails_the_node_clearly(manager) -> None:
    m, _ = manager
    wf = workflow(NODES, EDGES)
    first = m.submit(wf)
    first.wait(10)
    pinned = _pinned(m, wf, first.run_id, "b")
    (m.results.root / pinned.node("b").pin.key / "value.json").write_text("{not json")
    run = m.submit(pinned)
    assert run.wait(10) == RunStatus.FAILED
    nodes = run.snapshot().nodes
    assert nodes["b"]["error"]["type"] == "PinnedOutputError" and "unpin" in nodes["b"]["error"]["message"]
    assert nodes["c"]["status"] == "skipped"


def test_what_cannot_be_pinned_says_why(manager) -> None:
    m, _ = manager
    nodes = [*NODES, {"id": "sim", "agent": "sim.task", "params": {"duration_s": 0.001}}]
    wf = workflow(nodes, [*EDGES, ("c", "sim")])
    run = m.submit(wf, RunOptions(time_scale=0.01))
    assert run.wait(10) == RunStatus.SUCCEEDED
    with pytest.raises(PinError, match="simulated"):
        pin_from_run(wf, "sim", run.run_id, default_registry(), m.results)
    with pytest.raises(PinError, match="no node"):
        pin_from_run(wf, "nope", run.run_id, default_registry(), m.results)
    uncached = m.submit(workflow(NODES, EDGES, name="other").model_copy(update={"nodes": (
        workflow(NODES, EDGES).nodes[0].model_copy(update={"params": {"value": [7]}}), *workflow(NODES, EDGES).nodes[1:])}),
        RunOptions(use_cache=False))
    uncached.wait(10)
    with pytest.raises(PinError, match="no stored output"):
        pin_from_run(m.workflow(uncached.run_id), "b", uncached.run_id, default_registry(), m.results)
    # a simulated node pinned in the file is a validation error naming the node
    bad = with_pin(wf, "sim", pin_from_run(wf, "b", run.run_id, default_registry(), m.results))
    (issue,) = [i for i in validate(bad, default_registry()) if i.is_error]
    assert issue.code == "pin_not_allowed" and issue.node == "sim"


def test_a_pin_survives_the_file_round_trip() -> None:
    wf = with_pin(workflow(NODES, EDGES), "b", None)
    assert "pin" not in dump_workflow(wf)
    pinned = load_workflow('{"schema_version": 1, "nodes": [{"id": "b", "agent": "test.echo", '
                           '"pin": {"key": "' + "a" * 32 + '", "run_id": "r1"}}]}')
    assert load_workflow(dump_workflow(pinned)) == pinned
    from engine.errors import WorkflowFileError

    with pytest.raises(WorkflowFileError, match="pin"):
        load_workflow('{"schema_version": 1, "nodes": [{"id": "b", "agent": "test.echo", "pin": {"key": "../x"}}]}')


def test_the_plan_gives_pinned_nodes_and_what_only_feeds_them_no_time() -> None:
    from engine.problem import problem_from_workflow
    from engine.resources import Capacity
    from engine.workflow import PinSpec

    wf = workflow([{"id": "a", "agent": "test.sleep", "params": {"seconds": 5}},
                   {"id": "b", "agent": "test.sleep", "params": {"seconds": 7}},
                   {"id": "c", "agent": "test.sleep", "params": {"seconds": 2}}], [("a", "b"), ("b", "c")])
    cap = Capacity(cpu=2, memory_mb=4096, gpus=())
    before = problem_from_workflow(wf, default_registry(), cap)
    assert [before.tasks[n].duration for n in "abc"] == [5, 7, 2]
    after = problem_from_workflow(with_pin(wf, "b", PinSpec(key="b" * 32)), default_registry(), cap)
    assert [after.tasks[n].duration for n in "abc"] == [0, 0, 2]


def test_a_disabled_node_and_what_follows_it_are_left_out_of_the_run(manager) -> None:
    """ComfyUI's mute: a disabled node and every node after it do not run, the rest does and the run
    succeeds; an error on a left-out node does not block it; the run's workflow names them."""
    from engine.workflow import DISABLED_KEY, without_disabled

    m, _ = manager
    nodes = [*NODES, {"id": "side", "agent": "test.echo", "disabled": True},
             {"id": "after", "agent": "test.echo", "params": {"bad": 1}}]
    wf = workflow(nodes, [*EDGES, ("a", "side"), ("side", "after")])
    assert any(i.is_error for i in validate(wf, default_registry()))  # `after` has a bad parameter
    cut = without_disabled(wf)
    assert cut.node_ids() == ["a", "b", "c"] and cut.metadata[DISABLED_KEY] == ["side", "after"]
    assert without_disabled(workflow(NODES, EDGES)) == workflow(NODES, EDGES)
    run = m.submit(wf)
    assert run.wait(10) == RunStatus.SUCCEEDED
    assert set(run.snapshot().nodes) == {"a", "b", "c"}
    assert m.workflow(run.run_id).metadata[DISABLED_KEY] == ["side", "after"]
    off = workflow([{**NODES[0], "disabled": True}, *NODES[1:]], EDGES)
    with pytest.raises(ValueError, match="every node is disabled"):
        m.submit(off)


def test_a_bypassed_node_passes_its_input_straight_on(manager) -> None:
    """ComfyUI's bypass: the node does not run and its one input goes to what it fed; a chain of
    bypassed nodes collapses; a bypass that cannot be wired is a finding, not a broken run."""
    from engine.workflow import BYPASSED_KEY, without_bypassed

    m, _ = manager
    nodes = [{"id": "a", "agent": "test.source", "params": {"value": [1, 2, 3]}},
             {"id": "b", "agent": "flow.limit", "params": {"n": 1}, "bypass": True},
             {"id": "b2", "agent": "test.echo", "bypass": True},
             {"id": "c", "agent": "test.echo"}]
    wf = workflow(nodes, [("a", "b"), ("b", "b2"), ("b2", "c")])
    cut = without_bypassed(wf)
    assert cut.node_ids() == ["a", "c"] and [(e.source, e.target) for e in cut.edges] == [("a", "c")]
    assert cut.metadata[BYPASSED_KEY] == ["b", "b2"]
    assert not [i for i in validate(wf, default_registry()) if i.is_error]
    run = m.submit(wf)
    assert run.wait(10) == RunStatus.SUCCEEDED
    assert set(run.snapshot().nodes) == {"a", "c"}
    assert m.outputs(run.run_id, "c") == {"out": [1, 2, 3]}  # the limit to 1 item was bypassed
    plain = m.submit(workflow([{**n, "bypass": False} for n in nodes], [("a", "b"), ("b", "b2"), ("b2", "c")]))
    assert plain.wait(10) == RunStatus.SUCCEEDED and m.outputs(plain.run_id, "c") == {"out": [1]}
    # kinds that do not fit once the node is bypassed: reported on it, and the run is refused
    texts = workflow([{"id": "t", "agent": "text.source", "params": {"n": 4}},
                      {"id": "s", "agent": "text.sentiment", "bypass": True},
                      {"id": "th", "agent": "decision.threshold"}], [("t", "s"), ("s", "th")])
    (issue,) = [i for i in validate(texts, default_registry()) if i.is_error]
    assert issue.code == "bypass_not_possible" and issue.node == "s" and "'text_batch'" in issue.message
    with pytest.raises(WorkflowInvalidError):
        m.submit(texts)
