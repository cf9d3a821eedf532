"""Item-wise payloads (engine/payloads.py): cutting into batches and joining back is lossless,
in any batch order, and mismatched batches are refused with a clear error."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.agents.vision import Classify
from engine.kinds import DataKind
from engine.payloads import Joiner, PayloadShapeError, count_items, cut, join, payload_bytes


def _images(n: int) -> dict:
    return {"images": torch.arange(n * 3 * 2 * 2, dtype=torch.float32).view(n, 3, 2, 2),
            "ids": [f"i{k}" for k in range(n)], "labels": torch.arange(n) % 2, "classes": ["a", "b"],
            "lesion_centers": [(k, k) if k % 3 else None for k in range(n)]}


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 40), size=st.integers(1, 12))
def test_cut_then_join_gives_the_payload_back(n: int, size: int) -> None:
    payload = _images(n)
    parts = [cut(payload, DataKind.IMAGE_BATCH, slice(s, min(n, s + size))) for s in range(0, n, size)]
    assert sum(count_items(p, DataKind.IMAGE_BATCH) for p in parts) == n
    joined = join(parts, DataKind.IMAGE_BATCH)
    assert torch.equal(joined["images"], payload["images"]) and torch.equal(joined["labels"], payload["labels"])
    assert joined["ids"] == payload["ids"] and joined["lesion_centers"] == payload["lesion_centers"]
    assert joined["classes"] == ["a", "b"]  # shared fields are not repeated per batch (2 items != 2 classes)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 30), size=st.integers(1, 8), seed=st.integers(0, 1000))
def test_the_joiner_accepts_batches_in_any_order(n: int, size: int, seed: int) -> None:
    spec = Classify.spec
    parts = [slice(s, min(n, s + size)) for s in range(0, n, size)]
    scores = torch.rand(n, 2, generator=torch.Generator().manual_seed(seed))
    ids = [f"i{k}" for k in range(n)]
    joiner = Joiner(spec, n, len(parts))
    order = list(range(len(parts)))
    random.Random(seed).shuffle(order)
    for i in order:
        p = parts[i]
        joiner.add(i, p, {"scores": {"scores": scores[p], "classes": ["x", "y"], "ids": ids[p], "labels": None},
                          "labels": {"labels": ["x"] * (p.stop - p.start), "ids": ids[p],
                                     "confidence": scores[p].max(1).values.tolist()}})
    out = joiner.result()
    assert torch.equal(out["scores"]["scores"], scores) and out["scores"]["ids"] == ids
    assert out["scores"]["labels"] is None and out["labels"]["confidence"] == scores.max(1).values.tolist()


def test_mismatched_or_missing_batches_are_refused() -> None:
    spec = Classify.spec
    joiner = Joiner(spec, 4, 2)
    joiner.add(0, slice(0, 2), {"scores": {"scores": torch.zeros(2, 2), "ids": ["a", "b"]}, "labels": {"ids": []}})
    with pytest.raises(PayloadShapeError, match="batches are missing"):
        joiner.result()
    with pytest.raises(PayloadShapeError, match="unlike the other batches"):
        joiner.add(1, slice(2, 4), {"scores": {"scores": torch.zeros(2, 3), "ids": ["c", "d"]}, "labels": {"ids": []}})
    with pytest.raises(PayloadShapeError, match="cannot count"):
        count_items({"classes": ["a"]}, DataKind.IMAGE_BATCH)


def test_an_itemwise_agent_must_have_run_batch() -> None:
    from engine.registry import agent
    from engine.spec import Agent, PortSpec

    with pytest.raises(TypeError, match="run_batch"):
        @agent("bad.itemwise", category="testing", description="x", itemwise=True,
               inputs=[PortSpec("texts", DataKind.TEXT_BATCH)])
        class Bad(Agent):
            pass


def test_an_agent_can_write_its_batch_straight_into_the_joined_tensor() -> None:
    from engine.agents import vision_ops as ops
    from engine.agents.batching import run_itemwise
    from engine.agents.vision import Preprocess
    from engine.spec import Lifecycle, RunContext

    images = torch.rand(10, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    agent = Preprocess(Preprocess.spec.parse_params({"size": 16, "denoise": "gaussian", "normalise": "unit"}))
    ctx = RunContext(lifecycle=Lifecycle.model_validate({"execution": {"batch_size": 4}}), threads=2)
    slots: list = []
    real_slot = Joiner.slot

    def spy(self, port, key, part, like):
        view = real_slot(self, port, key, part, like)
        slots.append((part, view))
        return view

    Joiner.slot = spy  # type: ignore[method-assign]
    try:
        out = run_itemwise(agent, {"images": {"images": images, "ids": [str(i) for i in range(10)]}}, ctx)
    finally:
        Joiner.slot = real_slot  # type: ignore[method-assign]
    expected = ops.normalise(ops.denoise(images, "gaussian", 1.0), "unit", 0.5, 0.25)
    assert torch.allclose(out["images"]["images"], expected, atol=1e-6)
    assert sorted(p.start for p, _ in slots) == [0, 4, 8]
    for part, view in slots:  # each batch was written in place: the joined tensor shares its memory
        assert view is not None and view.data_ptr() == out["images"]["images"][part].data_ptr()
    joiner = Joiner(Preprocess.spec, 10, 3)
    assert joiner.slot("images", "images", slice(0, 4), torch.zeros(3, 3, 16, 16)) is None  # wrong row count


def test_a_failing_batch_stops_the_batches_not_started_yet() -> None:
    import time

    from engine.agents.splits import run_split

    ran: list[int] = []

    def fn(i: int) -> int:
        if i == 0:
            raise ValueError("batch 0 is bad")
        time.sleep(0.01)
        ran.append(i)
        return i

    with pytest.raises(ValueError, match="batch 0"):
        run_split(fn, 100, 2, "cpu", None)  # 2 batches at once
    assert len(ran) < 20, len(ran)  # not all 99 others ran first


def test_payload_bytes_counts_tensors_arrays_text_and_containers() -> None:
    import numpy as np

    assert payload_bytes(torch.zeros(10, 10)) == 400  # float32 elements
    assert payload_bytes(np.zeros(5, dtype=np.float64)) == 40
    assert payload_bytes("abc") == 3 and payload_bytes(b"abcd") == 4
    batch = {"images": torch.zeros(4, 3, 8, 8), "ids": ["a", "bb"], "labels": None}
    assert payload_bytes(batch) == 4 * 3 * 8 * 8 * 4 + (1 + 2 + 2 * 8) + 8 + 3 * 8
    assert payload_bytes(list(range(1000))) == 8 * 1000  # long numeric lists: 8 bytes an item
    deep: list = []
    for _ in range(20):
        deep = [deep]
    assert payload_bytes(deep) < 1000  # bounded depth, no recursion error
