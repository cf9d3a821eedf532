"""Edit and continue (``RunManager.amend``, ``engine.amend``): a node that has not started takes
new settings in a run under way, typically one paused at a breakpoint; the run then computes
with them (and not from the cache), records what changed, and refuses what it cannot take with
the run left as it was."""

from __future__ import annotations

import pytest
from executor_kit import MACHINE, Recorder, statuses, until, workflow

from engine.errors import AmendError
from engine.events import RunStatus
from engine.results import ResultStore
from engine.runs import RunManager, RunOptions
from engine.workflow import NodeSpec

BATCH = {"execution": {"batch_size": 4}}


def _tags(breakpoint_at: str = "a", *, wait_s: float = 0.0) -> object:
    nodes = [{"id": "src", "agent": "test.texts", "params": {"n": 6}},
             {"id": "a", "agent": "test.tag", "params": {"suffix": "A", "wait_s": wait_s}, "lifecycle": BATCH},
             {"id": "b", "agent": "test.tag", "params": {"suffix": "B"}, "lifecycle": BATCH},
             {"id": "after", "agent": "test.echo"}]
    for node in nodes:
        node["breakpoint"] = node["id"] == breakpoint_at
    return workflow(nodes, [("src", "a"), ("a", "b"), ("b", "after")])


def _paused(m: RunManager, wf: object, options: RunOptions | None = None):
    handle = m.submit(wf, options or RunOptions(use_cache=False))
    until(lambda: handle.snapshot().paused_at is not None)
    return handle


def test_a_node_held_at_its_breakpoint_runs_with_the_parameters_set_at_the_pause(manager) -> None:
    m, rec = manager
    handle = _paused(m, _tags())
    assert handle.snapshot().paused_at == "a"
    changed = handle.set_params("a", suffix="Z")
    assert changed == ["suffix 'A' -> 'Z'"]
    assert m.workflow(handle.run_id).node("a").params == {"suffix": "Z", "wait_s": 0.0}  # what the run records
    (event,) = rec.of(handle.run_id, "NodeAmended")
    assert event.node_id == "a" and event.changes == ("suffix 'A' -> 'Z'",) and event.node["params"]["suffix"] == "Z"
    assert handle.snapshot().amended == {"a": ["suffix 'A' -> 'Z'"]}
    assert handle.snapshot().paused  # a change does not resume the run
    handle.resume()
    assert handle.wait(20) == RunStatus.SUCCEEDED
    assert handle.outputs("b")["texts"]["texts"] == [f"item-{i}ZB" for i in range(6)]
    logs = handle.snapshot().nodes["a"]["logs"]
    assert "settings changed during the run: suffix 'A' -> 'Z'" in logs


def test_nodes_further_on_and_several_settings_change_at_once(manager) -> None:
    m, _ = manager
    handle = _paused(m, _tags())
    ran = m.workflow(handle.run_id)
    b = ran.node("b").model_copy(update={"params": {"suffix": "Y"}, "resources": {"memory_mb": 64},
                                         "lifecycle": {"execution": {"batch_size": 4, "retries": 2}}})
    changes = handle.amend([b, ran.node("after")])  # an unchanged node is no change
    assert changes == {"b": ["suffix 'B' -> 'Y'", "resources.memory_mb (default) -> 64",
                             "lifecycle.execution.retries (default) -> 2"]}
    handle.resume()
    assert handle.wait(20) == RunStatus.SUCCEEDED
    assert handle.outputs("b")["texts"]["texts"][0] == "item-0AY"
    assert handle.snapshot().nodes["b"]["demand"]["memory_mb"] == 64


def test_a_node_that_started_or_ended_cannot_change_and_the_run_is_left_as_it_was(manager) -> None:
    m, rec = manager
    handle = _paused(m, _tags(breakpoint_at="b"))
    assert statuses(handle)["a"] == "done"
    with pytest.raises(AmendError, match=r"node 'a' of run \w+ has ended \(done\): a node's settings can change "
                                         r"only before it starts"):
        handle.set_params("a", suffix="Z")
    assert m.workflow(handle.run_id).node("a").params["suffix"] == "A" and rec.of(handle.run_id, "NodeAmended") == []
    handle.resume()
    assert handle.wait(20) == RunStatus.SUCCEEDED
    with pytest.raises(AmendError, match=r"has ended \(succeeded\): change the workflow and run it again"):
        handle.set_params("b", suffix="Z")


def test_bad_settings_are_refused_with_what_is_wrong(manager) -> None:
    m, _ = manager
    handle = _paused(m, _tags())
    with pytest.raises(AmendError, match=r"the new settings of 'a' do not validate, so run \w+ goes on as it was: "
                                         r"\[invalid_param\] node .a.: parameter suffix = .* is invalid: String should have at most 20"):
        handle.set_params("a", suffix="x" * 50)  # longer than the agent allows
    ran = m.workflow(handle.run_id)
    with pytest.raises(AmendError, match=r"node 'a': its agent changed, which a run under way cannot take"):
        handle.amend([ran.node("a").model_copy(update={"agent": "test.echo"})])
    with pytest.raises(AmendError, match=r"has no node 'nope'; its nodes are: 'src', 'a', 'b', 'after'"):
        handle.set_params("nope", suffix="Z")
    with pytest.raises(AmendError, match=r"\[capacity_exceeded\] node 'b' needs 10,000,000 MB of memory but the capacity has"):
        handle.amend([ran.node("b").model_copy(update={"resources": {"memory_mb": 10 ** 7}})])
    assert handle.snapshot().amended == {}
    handle.resume()
    assert handle.wait(20) == RunStatus.SUCCEEDED
    assert handle.outputs("b")["texts"]["texts"][0] == "item-0AB"  # as it was


def test_a_changed_node_and_all_after_it_compute_instead_of_coming_from_the_cache(tmp_path) -> None:
    m = RunManager(machine=MACHINE, results=ResultStore(tmp_path / "results"), sample_hz=20)
    try:
        first = m.submit(_tags(breakpoint_at=""), RunOptions())
        assert first.wait(20) == RunStatus.SUCCEEDED
        again = _paused(m, _tags(breakpoint_at="b"), RunOptions())
        assert statuses(again)["a"] == "cached"  # before b: the same as the first run
        again.set_params("b", suffix="Q")
        again.resume()
        assert again.wait(20) == RunStatus.SUCCEEDED
        ended = statuses(again)
        assert ended["b"] == "done" and ended["after"] == "done"  # no longer the cached ones
        assert again.outputs("b")["texts"]["texts"][0] == "item-0AQ"
        third = m.submit(_tags(breakpoint_at=""), RunOptions())  # the first version is still cached
        assert third.wait(20) == RunStatus.SUCCEEDED and set(statuses(third).values()) == {"cached"}
    finally:
        m.shutdown(timeout=5)


def test_a_breakpoint_set_or_taken_away_during_the_run(manager) -> None:
    m, rec = manager
    handle = _paused(m, _tags())
    ran = m.workflow(handle.run_id)
    handle.amend([ran.node("b").model_copy(update={"breakpoint": True})])
    handle.resume()
    until(lambda: handle.snapshot().paused_at == "b")
    assert statuses(handle)["a"] == "done"
    after = m.workflow(handle.run_id).node("after").model_dump()
    handle.amend([NodeSpec.model_validate({**after, "breakpoint": True,
                                           "break_when": {"field": "id", "op": "==", "value": "nope"}})])
    handle.resume()
    assert handle.wait(20) == RunStatus.SUCCEEDED  # the condition held for no row: not paused
    assert [e.at for e in rec.of(handle.run_id, "RunPaused")] == ["a", "b"]


def test_a_change_to_a_node_of_a_fused_chain_runs_the_chain_node_by_node(tmp_path) -> None:
    m = RunManager(machine=MACHINE, results=ResultStore(tmp_path / "results"), sample_hz=20)
    rec = Recorder()
    m.bus.subscribe(rec)
    try:
        nodes = [{"id": "src", "agent": "test.texts", "params": {"n": 6}, "breakpoint": True},
                 {"id": "a", "agent": "test.tag", "params": {"suffix": "A"}, "lifecycle": BATCH},
                 {"id": "b", "agent": "test.tag", "params": {"suffix": "B"}, "lifecycle": BATCH},
                 {"id": "after", "agent": "test.echo"}]
        wf = workflow(nodes, [("src", "a"), ("a", "b"), ("b", "after")])
        handle = _paused(m, wf, RunOptions(policy="fifo", use_cache=False, predict=False))
        assert handle.snapshot().nodes["b"]["fused_into"] == "a"  # fused before the change
        handle.set_params("b", suffix="F")
        assert handle.snapshot().nodes["b"]["fused_into"] is None
        handle.resume()
        assert handle.wait(20) == RunStatus.SUCCEEDED
        assert handle.outputs("b")["texts"]["texts"][0] == "item-0AF"
        started = {e.node_id: e for e in rec.of(handle.run_id, "NodeStarted")}
        assert started["b"].demand["cpu"] == 1  # on its own, holding its own demand
        assert not any("fused" in line for line in handle.snapshot().nodes["a"]["logs"])
        unchanged = m.submit(wf.model_copy(update={"nodes": [n.model_copy(update={"breakpoint": False})
                                                              for n in wf.nodes]}),
                             RunOptions(policy="fifo", use_cache=False, predict=False))
        assert unchanged.wait(20) == RunStatus.SUCCEEDED  # the same workflow, unchanged, fuses a -> b
        assert any("fused a -> b" in line for line in unchanged.snapshot().nodes["a"]["logs"])
    finally:
        m.shutdown(timeout=5)


def test_the_demand_of_a_node_whose_memory_grows_with_its_items_follows_a_changed_source(manager) -> None:
    """A source told to emit more items: the nodes after it that hold memory per item ask for more
    before they start (their demand is worked out from the planned items again)."""
    m, _ = manager
    wf = workflow([{"id": "requests", "agent": "text.source", "params": {"mode": "requests", "n": 60},
                    "breakpoint": True},
                   {"id": "entities", "agent": "text.entities"}], [("requests", "entities")])
    handle = _paused(m, wf)
    before = handle.snapshot().nodes["entities"]["demand"]["memory_mb"]
    handle.set_params("requests", n=50_000)
    after = handle.snapshot().nodes["entities"]["demand"]["memory_mb"]
    per_item = m.registry.get("text.entities").memory_per_item_mb
    assert after - before == pytest.approx((50_000 - 60) * per_item, rel=0.01)
    handle.cancel()
    handle.wait(20)


def test_changes_racing_admission_are_taken_whole_or_refused(manager) -> None:
    """Changes sent while the run goes on (not paused) race the scheduler: each is either taken,
    and the node runs with it, or refused because the node started, and the node runs as it was;
    what the run records is what each node ran with."""
    m, _ = manager
    nodes = [{"id": "src", "agent": "test.texts", "params": {"n": 2}}]
    nodes += [{"id": f"t{i}", "agent": "test.tag", "params": {"suffix": "old", "wait_s": 0.01}, "resources": {"cpu": 1}}
              for i in range(24)]
    wf = workflow(nodes, [("src", f"t{i}") for i in range(24)], capacity={"cpu": 1})
    handle = m.submit(wf, RunOptions(use_cache=False, policy="fifo"))
    taken: dict[str, bool] = {}
    for i in reversed(range(24)):  # the last ones are admitted last: some changes win, some come late
        try:
            taken[f"t{i}"] = handle.set_params(f"t{i}", suffix="new") == ["suffix 'old' -> 'new'"]
        except AmendError as exc:
            assert "has started" in str(exc) or "has ended" in str(exc), exc
            taken[f"t{i}"] = False
    assert handle.wait(30) == RunStatus.SUCCEEDED
    ran = m.workflow(handle.run_id)
    for nid, took in taken.items():
        suffix = handle.outputs(nid)["texts"]["texts"][0].removeprefix("item-0")
        assert suffix == ("new" if took else "old"), nid
        assert ran.node(nid).params["suffix"] == suffix  # the record says what it ran with
    assert any(taken.values()), "no change won the race: the test shows nothing"
