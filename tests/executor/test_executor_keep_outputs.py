"""``lifecycle.execution.keep_outputs: false``: a node's outputs are dropped from memory once
every downstream node has ended (engine/executor.py); in a fused chain such a node's batches go
straight to the next node and are never joined (engine/fusion.py). Downstream results are the
same as with the outputs kept; the summary stays; a cached copy is read back."""

from __future__ import annotations

from executor_kit import workflow

from engine.runs import RunOptions

OPTIONS = RunOptions(use_cache=False, predict=False)
BATCH = {"execution": {"batch_size": 3}}


def _chain(keep: bool, batch: dict | None = BATCH):
    a_life = {"execution": {**(batch or {}).get("execution", {}), "keep_outputs": keep}}
    nodes = [{"id": "src", "agent": "test.texts", "params": {"n": 10}},
             {"id": "a", "agent": "test.tag", "params": {"suffix": "A"}, "lifecycle": a_life},
             {"id": "b", "agent": "test.tag", "params": {"suffix": "B"}, "lifecycle": batch or {}}]
    return workflow(nodes, [("src", "a"), ("a", "b")])


def _run(m, wf, options=OPTIONS):
    handle = m.submit(wf, options)
    handle.wait(30)
    return handle, handle.snapshot()


def test_unfused_outputs_are_dropped_once_the_consumer_ends(manager) -> None:
    m, _ = manager
    kept, snap_kept = _run(m, _chain(True, batch=None))
    dropped, snap = _run(m, _chain(False, batch=None))
    assert snap.status == snap_kept.status == "succeeded"
    assert not any("fused" in x for x in snap.nodes["a"]["logs"])
    assert dropped.outputs("a") is None and snap.nodes["a"]["outputs_dropped"]
    assert kept.outputs("a") is not None and not snap_kept.nodes["a"]["outputs_dropped"]
    assert dropped.outputs("b") == kept.outputs("b")
    assert snap.nodes["a"]["output_summary"] == snap_kept.nodes["a"]["output_summary"]


def test_a_fused_node_with_its_own_finish_is_joined_then_dropped(manager) -> None:
    """test.tag's ``finish`` reads its whole outputs: it is joined, and dropped after the chain."""
    m, _ = manager
    kept, _ = _run(m, _chain(True))
    dropped, snap = _run(m, _chain(False))
    assert snap.status == "succeeded"
    assert any("fused a -> b" in x for x in snap.nodes["a"]["logs"])
    assert not any("outputs not kept" in x for x in snap.nodes["a"]["logs"])
    assert any("tagged 10 texts" in x for x in snap.nodes["a"]["logs"])  # its finish saw them all
    assert dropped.outputs("a") is None and snap.nodes["a"]["outputs_dropped"]
    assert dropped.outputs("b") == kept.outputs("b")


def test_with_the_cache_on_the_node_is_stored_and_read_back(manager) -> None:
    m, _ = manager
    reference, _ = _run(m, _chain(True))
    cached, snap = _run(m, _chain(False), RunOptions(predict=False))  # cache on: a is stored whole
    assert snap.status == "succeeded" and snap.nodes["a"]["outputs_dropped"]
    assert not any("outputs not kept" in x for x in snap.nodes["a"]["logs"])
    assert cached.outputs("a") == reference.outputs("a")  # from the result cache


def test_a_streamed_preprocess_is_never_joined_and_the_classifier_still_reports_accuracy(manager) -> None:
    """preprocess has no ``finish``: its batches go straight to classify; classify's ``finish``
    gets the payload without per-item fields (the class names) and logs the same accuracy."""
    import torch

    m, _ = manager
    batch = {"execution": {"batch_size": 16}}

    def wf(keep: bool):
        nodes = [{"id": "scans", "agent": "vision.source", "params": {"n_items": 48}},
                 {"id": "pre", "agent": "vision.preprocess",
                  "lifecycle": {"execution": {"batch_size": 16, "keep_outputs": keep}}, "resources": {"cpu": 2}},
                 {"id": "cls", "agent": "vision.classify", "lifecycle": batch, "resources": {"cpu": 2}}]
        return workflow(nodes, [("scans", "pre"), ("pre", "cls")])

    kept, snap_kept = _run(m, wf(True))
    streamed, snap = _run(m, wf(False))
    assert snap.status == snap_kept.status == "succeeded"
    assert any("fused pre -> cls" in x for x in snap.nodes["pre"]["logs"])
    assert any("outputs not kept" in x for x in snap.nodes["pre"]["logs"])  # never joined
    assert streamed.outputs("pre") is None and snap.nodes["pre"]["outputs_dropped"]
    assert all("not_kept" in d for d in snap.nodes["pre"]["output_summary"].values())
    assert snap.nodes["pre"]["metrics"]["items"] == 48
    assert torch.allclose(streamed.outputs("cls")["scores"]["scores"], kept.outputs("cls")["scores"]["scores"])
    accuracy = [x for x in snap.nodes["cls"]["logs"] if x.startswith("accuracy")]
    assert accuracy and accuracy == [x for x in snap_kept.nodes["cls"]["logs"] if x.startswith("accuracy")]
