"""The GPU memory the agents declare (``AgentSpec.gpu_memory_fn``), fitted to what
bench/gpu/memory.py measured on an H200: what a node reserves on a GPU grows with its batch and
its images, a node's own ``gpu_memory_mb`` wins, and the scheduler never puts more on a GPU than
it holds. (Measured against a real GPU: tests/agents/test_templates_gpu.py.)"""

from __future__ import annotations

import copy
import json

import pytest
from template_kit import EXAMPLES

from engine.agents.runtime import GPU_WORKSPACE_MB
from engine.issues import IssueCode
from engine.items import planned_items
from engine.registry import default_registry
from engine.resources import Capacity, GpuDevice, ResourceLedger
from engine.spec import ImageSizes
from engine.validation import validate
from engine.workflow import Workflow

REGISTRY = default_registry()


def _once(agent: str) -> float:
    """The part an agent declares once (the workspaces, its weights)."""
    parts = REGISTRY.get(agent).gpu_memory_parts()
    assert parts is not None
    return parts[0]


def _gpu(agent: str, items: int, images: ImageSizes | None = None, lifecycle: dict | None = None,
         overrides: dict | None = None, **params: object) -> float:
    spec = REGISTRY.get(agent)
    return spec.demand_for(overrides, spec.parse_params(params), items, images=images,
                           lifecycle=lifecycle).gpu_memory_mb


def test_preprocessing_reserves_four_copies_of_each_image_of_a_batch() -> None:
    """Measured: 6.1 MB for a batch of 32 images of 3 x 64 x 64, 24 MB at 128 px, 1.5 MB at 8
    images; a batch of 128 holding only 64 images took half of 128's."""
    small, large = ImageSizes((3, 64, 64), (3, 64, 64)), ImageSizes((3, 128, 128), (3, 128, 128))
    batch = 4 * 4 * 3 * 64 * 64 / 2**20  # four float copies of one image
    once = _once("vision.preprocess")
    assert GPU_WORKSPACE_MB <= once <= GPU_WORKSPACE_MB + 2
    assert _gpu("vision.preprocess", 256, small) == pytest.approx(once + 32 * batch)
    assert _gpu("vision.preprocess", 256, large) == pytest.approx(once + 32 * 4 * batch)
    assert _gpu("vision.preprocess", 20, small) == pytest.approx(once + 20 * batch)  # one short batch
    per_batch = {b: _gpu("vision.preprocess", 10_000, small, {"execution": {"batch_size": b}}) - once
                 for b in (8, 32, 128)}
    assert per_batch[32] == pytest.approx(4 * per_batch[8]) and per_batch[128] == pytest.approx(4 * per_batch[32])
    upscaled = ImageSizes((1, 32, 32), None)  # the output's size comes from its params: 3 x 64 x 64 kept
    assert _gpu("vision.preprocess", 32, upscaled, size=128) > _gpu("vision.preprocess", 32, upscaled, size=32)


def test_the_cnns_reserve_their_activations_and_the_items_do_not_add_beyond_a_batch() -> None:
    """Measured: classify 8 MB a batch of 32 whatever the image size (resized to its 64 px input
    first), explain 16.5 MB."""
    for agent, per_item in (("vision.classify", 0.25), ("vision.embed", 0.25), ("vision.explain", 0.52)):
        one_batch = _gpu(agent, 32, ImageSizes((3, 64, 64), None))
        assert one_batch == pytest.approx(_once(agent) + 32 * per_item), agent
        assert _gpu(agent, 5_000, ImageSizes((3, 64, 64), None)) == one_batch  # batches of 32
    huge = ImageSizes((3, 512, 512), None)  # larger than its activations: the copies being resized
    assert _gpu("vision.classify", 32, huge) == pytest.approx(_once("vision.classify") + 32 * 2 * 4 * 3 * 512 * 512 / 2**20)
    assert _gpu("vision.classify", 32, ImageSizes((3, 64, 64), None)) >= 40.04  # a lone classify node, a fresh process


def test_text_agents_without_a_batch_size_reserve_for_all_their_texts() -> None:
    """Measured: the entity tagger 16.8 MB for 600 texts, the classifiers under 2 MB for 900, and
    a lone sentiment node in a fresh process (the CLI, 90 reviews) 35.1 MB, workspaces included."""
    few, many = _gpu("text.entities", 60), _gpu("text.entities", 6_000)
    assert many - few == pytest.approx((6_000 - 60) * 0.05)
    assert _gpu("text.entities", 6_000, lifecycle={"execution": {"batch_size": 64}}) == pytest.approx(few + 4 * 0.05)
    assert 16.8 <= _gpu("text.entities", 600) - GPU_WORKSPACE_MB <= 2 * 16.8 + 2
    assert _gpu("text.sentiment", 90) >= 35.1 and _gpu("text.sentiment", 900) <= 35.1 + 1.7 + 2


def test_a_nodes_own_gpu_memory_wins_and_cpu_agents_declare_none() -> None:
    assert _gpu("vision.classify", 256, overrides={"gpu_memory_mb": 900}) == 900
    assert _gpu("vision.source", 256) == 0 and _gpu("flow.merge", 256) == 0
    assert GPU_WORKSPACE_MB + 6 <= _gpu("tabular.fraud_score", 20_000) <= GPU_WORKSPACE_MB + 12  # 6 MB measured


def test_a_bad_lifecycle_leaves_the_agents_batch_size() -> None:
    """Validation names the bad lifecycle; the demand is still worked out (not a traceback)."""
    assert _gpu("vision.classify", 256, lifecycle={"execution": {"batch_size": -3}}) == _gpu("vision.classify", 256)


def _pipeline(gpu_mb: float, batch: int = 32) -> Workflow:
    data = json.loads((EXAMPLES / "image-pipeline.json").read_text())
    data = copy.deepcopy(data)
    for node in data["nodes"]:
        if node["agent"] == "vision.classify":
            node["lifecycle"] = {"execution": {"batch_size": batch}}
    data["capacity"] = {"cpu": 2, "memory_mb": 2048, "gpus": [{"index": 0, "memory_mb": gpu_mb, "simulated": True}]}
    return Workflow.model_validate(data)


def test_the_ledger_never_puts_more_on_a_gpu_than_it_holds() -> None:
    """Two classify nodes of 42 MB each on a 60 MB GPU: the second goes to the CPU (device any)
    instead of sharing memory that is not there; once the first ends, the GPU takes one again."""
    flow = _pipeline(60)
    spec = REGISTRY.get("vision.classify")
    node = flow.node("classify")
    assert node is not None
    demand = planned_items(flow, REGISTRY).demand("classify", spec, spec.parse_params(node.params), node.resources,
                                                  node.lifecycle)
    assert demand.gpu_memory_mb == pytest.approx(_once("vision.classify") + 32 * 0.25)
    ledger = ResourceLedger(Capacity(cpu=4, memory_mb=4096, gpus=(GpuDevice(index=0, memory_mb=60, simulated=True),)))
    first = ledger.place(demand)
    assert first == "cuda:0"
    ledger.acquire(demand, first)
    assert ledger.place(demand) == "cpu"
    ledger.release(demand, first)
    assert ledger.place(demand) == "cuda:0"


def test_a_batch_too_large_for_the_gpu_is_a_validation_error_on_a_cuda_only_node() -> None:
    """A node that must run on the GPU (device cuda) with a batch whose activations pass the
    card's memory: validation says so and names the node, before anything runs."""
    flow = _pipeline(80, batch=1024)  # 256 images in one batch: 34 + 64 MB
    data = flow.model_dump(mode="json")
    for node in data["nodes"]:
        if node["agent"] == "vision.classify":
            node["resources"] = {**node.get("resources", {}), "device": "cuda"}
    issues = [i for i in validate(Workflow.model_validate(data), REGISTRY) if i.severity == "error"]
    assert [(i.code, i.node) for i in issues] == [(IssueCode.CAPACITY_EXCEEDED, "classify")]
    assert "GPU memory" in issues[0].message and "batch size" in issues[0].hint
    assert not [i for i in validate(_pipeline(80, batch=32), REGISTRY) if i.severity == "error"]


def test_the_declaration_reads_for_people() -> None:
    """What the Agents page says (its table: tests/ui/test_agent_figures.py)."""
    assert REGISTRY.get("vision.classify").gpu_memory_text() == "34 MB + 0.25 MB per item of a batch (32 by default)"
    assert REGISTRY.get("text.entities").gpu_memory_text().endswith("(all its items at once)")
    assert REGISTRY.get("vision.source").gpu_memory_text() == ""
