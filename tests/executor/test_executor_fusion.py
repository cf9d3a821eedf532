"""Operator fusion (engine/fusion.py): chains of itemwise agents run batch by batch on one worker
with the same outputs, events and ledger guarantees as stage by stage; a failure or cancel falls
back to running the nodes one by one."""

from __future__ import annotations

import time
from typing import Any

import torch
from executor_kit import MACHINE, workflow
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sweep import assert_within, max_usage

from engine.events import NodeStatus
from engine.runs import RunOptions

OPTIONS = RunOptions(policy="fifo", use_cache=False, predict=False)
BATCH = {"execution": {"batch_size": 4}}


def _tag_chain(n: int = 10, batch: dict | None = BATCH, **tail: Any) -> Any:
    nodes = [{"id": "src", "agent": "test.texts", "params": {"n": n}},
             {"id": "a", "agent": "test.tag", "params": {"suffix": "A"}, "lifecycle": batch,
              "resources": {"cpu": 2, "memory_mb": 10}},
             {"id": "b", "agent": "test.tag", "params": {"suffix": "B", **tail}, "lifecycle": batch,
              "resources": {"cpu": 1, "memory_mb": 30}},
             {"id": "after", "agent": "test.echo"}]
    return workflow(nodes, [("src", "a"), ("a", "b"), ("b", "after")])


def _run(m, wf, options=OPTIONS, timeout: float = 60):
    handle = m.submit(wf, options)
    handle.wait(timeout)
    return handle, handle.snapshot()


def test_a_chain_of_itemwise_nodes_runs_fused_with_the_unfused_outputs(manager) -> None:
    m, rec = manager
    handle, snap = _run(m, _tag_chain())
    assert snap.status == "succeeded"
    texts = handle.outputs("b")["texts"]
    assert texts["texts"] == [f"item-{i}AB" for i in range(10)] and texts["ids"] == [f"item-{i}" for i in range(10)]
    assert handle.outputs("a")["texts"]["texts"] == [f"item-{i}A" for i in range(10)]  # the head's outputs are kept
    assert any("fused a -> b" in line for line in snap.nodes["a"]["logs"])
    assert any("fused a -> b" in line for line in snap.nodes["b"]["logs"])
    started = {e.node_id: e for e in rec.of(handle.run_id, "NodeStarted")}
    # the head holds the chain's demand (largest CPU, summed memory); the fused node holds nothing
    assert started["a"].demand["cpu"] == 2 and started["a"].demand["memory_mb"] == 40
    assert started["b"].demand["cpu"] == 0 and started["b"].demand["memory_mb"] == 0
    assert started["b"].worker == started["a"].worker
    assert snap.nodes["b"]["metrics"]["items"] == 10 and snap.nodes["a"]["metrics"]["items"] == 10

    unfused, snap2 = _run(m, _tag_chain(), RunOptions(policy="fifo", use_cache=False, predict=False, fuse=False))
    assert snap2.status == "succeeded"
    assert unfused.outputs("b") == handle.outputs("b") and unfused.outputs("a") == handle.outputs("a")
    assert not any("fused" in line for line in snap2.nodes["a"]["logs"])


def test_only_linear_chains_of_matching_batches_fuse(manager) -> None:
    m, _ = manager
    branch = _tag_chain()
    branch = workflow([*[n.model_dump() for n in branch.nodes], {"id": "side", "agent": "test.echo"}],
                      [("src", "a"), ("a", "b"), ("b", "after"), ("a", "side")])
    _, snap = _run(m, branch)  # a feeds two nodes: no chain
    assert snap.status == "succeeded" and not any("fused" in x for x in snap.nodes["a"]["logs"])
    _, snap = _run(m, _tag_chain(batch={}))  # no batch size: nothing to fuse batch by batch
    assert snap.status == "succeeded" and not any("fused" in x for x in snap.nodes["a"]["logs"])


def test_the_chain_never_over_commits_a_small_capacity(manager) -> None:
    m, rec = manager
    wf = workflow([*[n.model_dump() for n in _tag_chain(n=40).nodes],
                   {"id": "c2", "agent": "test.tag", "lifecycle": BATCH, "resources": {"cpu": 1, "memory_mb": 30}},
                   {"id": "d2", "agent": "test.tag", "lifecycle": BATCH, "resources": {"cpu": 1, "memory_mb": 30}}],
                  [("src", "a"), ("a", "b"), ("b", "after"), ("src", "c2"), ("c2", "d2")],
                  capacity={"cpu": 2, "memory_mb": 60})
    handle, snap = _run(m, wf)
    assert snap.status == "succeeded"
    events = rec.of(handle.run_id)
    assert_within(max_usage(events), {"cpu": 2, "memory_mb": 60, **{k: v for k, v in MACHINE.model_dump().items()
                                                                    if isinstance(v, int | float)}})
    order = [e.node_id for e in events if e.kind == "NodeFinished"]
    assert order.index("a") < order.index("b") < order.index("after")  # the head ends first, then its chain


def test_a_failing_fused_stage_falls_back_and_fails_alone(manager) -> None:
    m, rec = manager
    handle, snap = _run(m, _tag_chain(fail_on="item-5"))
    assert snap.status == "failed"
    nodes = snap.nodes
    assert nodes["a"]["status"] == "done" and nodes["b"]["status"] == "failed"
    assert "cannot tag item-5" in nodes["b"]["error"]["message"]
    assert nodes["after"]["status"] == "skipped"
    assert any("running the chain's nodes one by one" in x for x in nodes["a"]["logs"])
    assert handle.outputs("a")["texts"]["texts"][5] == "item-5A"  # the head finished on its own
    kinds = [e.kind for e in rec.of(handle.run_id) if e.node_id == "b"]
    assert kinds[-1] == "NodeFailed" and "NodeWaitingInputs" in kinds[kinds.index("NodeStarted"):]


def _started(m, wf, node: str):
    """Submit ``wf`` and return once ``node`` runs."""
    handle = m.submit(wf, OPTIONS)
    deadline = time.time() + 20
    while handle.snapshot().nodes[node]["status"] != "running" and time.time() < deadline:
        time.sleep(0.005)
    return handle


def test_cancelling_a_fused_node_cancels_it_and_the_head_finishes(manager) -> None:
    m, _ = manager
    handle = _started(m, _tag_chain(n=40, wait_s=0.05), "b")
    m.cancel_node(handle.run_id, "b")
    handle.wait(30)
    nodes = handle.snapshot().nodes
    assert nodes["b"]["status"] == "cancelled" and nodes["a"]["status"] == "done"
    assert nodes["after"]["status"] == "skipped"


def test_cancelling_the_run_ends_a_fused_chain(manager) -> None:
    m, _ = manager
    handle = _started(m, _tag_chain(n=400, wait_s=0.05), "a")
    handle.cancel()
    assert handle.wait(30) == "cancelled"
    statuses = {nid: n["status"] for nid, n in handle.snapshot().nodes.items()}
    assert statuses["a"] == "cancelled" and statuses["b"] in ("cancelled", "skipped")


def test_fused_nodes_are_cached_one_by_one(tmp_path) -> None:
    from engine.results import ResultStore
    from engine.runs import RunManager

    m = RunManager(machine=MACHINE, results=ResultStore(tmp_path / "results"))
    try:
        first = m.submit(_tag_chain(), RunOptions(policy="fifo", predict=False))
        assert first.wait(30) == "succeeded"
        second = m.submit(_tag_chain(), RunOptions(policy="fifo", predict=False))
        assert second.wait(30) == "succeeded"
        nodes = second.snapshot().nodes
        assert nodes["a"]["status"] == NodeStatus.CACHED.value and nodes["b"]["status"] == NodeStatus.CACHED.value
        assert second.outputs("b") == first.outputs("b")
    finally:
        m.shutdown()


def test_fused_vision_chain_equals_stage_by_stage(manager) -> None:
    m, _ = manager
    nodes = [{"id": "scans", "agent": "vision.source", "params": {"n_items": 40, "channels": 3}},
             {"id": "pre", "agent": "vision.preprocess", "lifecycle": {"execution": {"batch_size": 16}},
              "resources": {"cpu": 2}},
             {"id": "cls", "agent": "vision.classify", "lifecycle": {"execution": {"batch_size": 16}},
              "resources": {"cpu": 2}}]
    wf = workflow(nodes, [("scans", "pre"), ("pre", "cls")])
    fused, snap = _run(m, wf)
    plain, snap2 = _run(m, wf, RunOptions(policy="fifo", use_cache=False, predict=False, fuse=False))
    assert snap.status == snap2.status == "succeeded"
    assert any("fused pre -> cls" in x for x in snap.nodes["cls"]["logs"])
    assert torch.equal(fused.outputs("pre")["images"]["images"], plain.outputs("pre")["images"]["images"])
    assert torch.allclose(fused.outputs("cls")["scores"]["scores"], plain.outputs("cls")["scores"]["scores"])
    assert fused.outputs("cls")["labels"] == plain.outputs("cls")["labels"]
    accuracy = [x for x in snap.nodes["cls"]["logs"] if x.startswith("accuracy")]
    assert accuracy == [x for x in snap2.nodes["cls"]["logs"] if x.startswith("accuracy")] and len(accuracy) == 1


@st.composite
def chains(draw: st.DrawFn) -> tuple[Any, int, str | None]:
    """Two random chains of itemwise tag nodes from one source, random batch sizes (fusing only
    where neighbours match), demands and capacity; maybe one node fails on one item; some nodes
    do not keep their outputs."""
    n = draw(st.integers(0, 30))
    cap = {"cpu": draw(st.sampled_from([1.0, 2.0, 3.0])), "memory_mb": draw(st.sampled_from([50.0, 100.0]))}
    nodes: list[dict] = [{"id": "src", "agent": "test.texts", "params": {"n": n}}]
    edges = []
    fail = draw(st.sampled_from([None, None, f"item-{draw(st.integers(0, max(0, n - 1)))}"])) if n else None  # no items: none to fail on
    failing_node = None
    for c in range(2):
        prev = "src"
        for k in range(draw(st.integers(1, 4))):
            nid = f"c{c}_{k}"
            params: dict[str, Any] = {"suffix": f"/{nid}"}
            if fail and failing_node is None and draw(st.booleans()):
                params["fail_on"], failing_node = fail, nid
            nodes.append({"id": nid, "agent": "test.tag", "params": params,
                          "lifecycle": {"execution": {"batch_size": draw(st.sampled_from([3, 3, 7])),
                                                      "keep_outputs": draw(st.sampled_from([True, True, False]))}},
                          "resources": {"cpu": draw(st.sampled_from([0.5, 1.0])),
                                        "memory_mb": draw(st.sampled_from([0.0, 10.0, 25.0]))}})
            edges.append((prev, nid))
            prev = nid
    return workflow(nodes, edges, capacity=cap), n, failing_node


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(case=chains(), cancel_after=st.sampled_from([None, None, 0.0, 0.002]))
def test_fused_chains_keep_every_guarantee(manager, case, cancel_after) -> None:
    wf, n, failing = case
    m, rec = manager
    handle = m.submit(wf, OPTIONS)
    if cancel_after is not None:
        time.sleep(cancel_after)
        handle.cancel()
    status = handle.wait(30)
    snap = handle.snapshot()
    events = rec.of(handle.run_id)
    ids = [node.id for node in wf.nodes]
    assert all(NodeStatus(snap.nodes[i]["status"]).is_terminal for i in ids)
    endings = [e.node_id for e in events if e.kind in ("NodeFinished", "NodeFailed", "NodeCancelled", "NodeSkipped")]
    assert sorted(endings) == sorted(ids)  # exactly one ending per node
    assert_within(max_usage(events), {k: v for k, v in wf.capacity.model_dump().items() if k in ("cpu", "memory_mb")})
    finished = [e.node_id for e in events if e.kind == "NodeFinished"]
    for edge in wf.edges:  # a node finishes only after its parent
        if edge.target in finished:
            assert finished.index(edge.source) < finished.index(edge.target)
    if cancel_after is None:
        assert status == ("failed" if failing else "succeeded")
        for node in wf.nodes[1:]:
            if snap.nodes[node.id]["status"] != "done":
                continue
            path, cur = [], node.id  # the texts carry every suffix from the source to this node
            while cur != "src":
                path.append(cur)
                cur = next(e.source for e in wf.edges if e.target == cur)
            expected = [f"item-{i}" + "".join(f"/{p}" for p in reversed(path)) for i in range(n)]
            if node.lifecycle["execution"]["keep_outputs"]:
                assert handle.outputs(node.id)["texts"]["texts"] == expected, node.id
            else:  # dropped once everything downstream ended: by now the run has
                assert handle.outputs(node.id) is None and snap.nodes[node.id]["outputs_dropped"], node.id


def test_a_fused_node_cancelled_before_its_chain_starts_stays_cancelled(manager) -> None:
    m, rec = manager
    nodes = [{"id": "src", "agent": "test.texts", "params": {"n": 8}},
             {"id": "slow", "agent": "test.tag", "params": {"wait_s": 0.3}},  # no batch size: not in the chain
             {"id": "a", "agent": "test.tag", "lifecycle": BATCH},
             {"id": "b", "agent": "test.tag", "lifecycle": BATCH}]
    handle = m.submit(workflow(nodes, [("src", "slow"), ("slow", "a"), ("a", "b")]), OPTIONS)
    m.cancel_node(handle.run_id, "b")  # b waits for its inputs: cancelled at once
    handle.wait(30)
    snap = handle.snapshot()
    assert snap.nodes["b"]["status"] == "cancelled" and snap.nodes["a"]["status"] == "done"
    assert "NodeStarted" not in [e.kind for e in rec.of(handle.run_id) if e.node_id == "b"]
