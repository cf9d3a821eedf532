"""The real templates on a real CUDA device, through the engine as a user runs them: the machine's
GPU is detected, agents that may use it (``device: any``) are placed on it, their peak GPU memory
is measured, and the answers are those of the CPU run. Skipped where CUDA is absent; run on a GPU
machine with ``./dev.sh test -m gpu`` or ``bash bench/gpu/check.sh`` (which also benchmarks)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from template_kit import EXAMPLES, run_template

from engine.devices import machine_capacity
from engine.issues import IssueCode
from engine.results import ResultStore
from engine.runs import RunManager
from engine.validation import validate
from engine.workflow import Workflow, load_workflow

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.fixture(scope="module")
def gpu_manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunManager]:
    """This machine, its GPUs detected (``manager``, from conftest, is a CPU-only machine)."""
    m = RunManager(results=ResultStore(tmp_path_factory.mktemp("gpu-results")))
    yield m
    m.shutdown()


def _gpu_nodes(workflow: Workflow) -> set[str]:
    """The nodes whose agents may run on a GPU (``device: any`` or ``cuda``)."""
    from engine.registry import default_registry

    registry = default_registry()
    return {n.id for n in workflow.nodes
            if n.resources.get("device", registry.get(n.agent).resources.device) in ("any", "cuda")}


def _assert_within_declared(nodes: dict, peaks: dict) -> None:
    """What the nodes on the card reserved covers what they used there, so the scheduler admits
    others only into memory that is free. torch's peak is per process: a node's reading also
    holds what the nodes beside it on the card allocated meanwhile (medical-imaging's classify
    and explain run at once), so each is held to what all the nodes whose spans overlap its own
    (a fused chain's nodes among them) reserved."""
    on_card = {k: v for k, v in nodes.items() if v["device"] == "cuda:0" and v["start"] is not None}
    for head, peak in peaks.items():
        start, end = nodes[head]["start"], nodes[head]["end"]
        beside = [k for k, v in on_card.items() if v["start"] < end and v["end"] > start]
        declared = sum(nodes[k]["demand"].get("gpu_memory_mb", 0.0) for k in {head, *nodes[head]["chain"], *beside})
        assert peak is not None and 0 < peak <= declared, (head, beside, peak, declared)


def test_the_machines_gpu_is_detected_with_its_memory() -> None:
    gpus = machine_capacity().gpus or ()
    assert gpus and not any(g.simulated for g in gpus)
    total_mb = torch.cuda.get_device_properties(0).total_memory / 2**20
    assert gpus[0].device_id == "cuda:0" and abs(gpus[0].memory_mb - total_mb) < 1


@pytest.mark.parametrize(("name", "model", "source"),
                         [("medical-imaging", "classification", "scans"), ("image-pipeline", "classify", "scans")])
def test_vision_template_runs_on_the_gpu_and_agrees_with_the_cpu(
        gpu_manager: RunManager, manager: RunManager, name: str, model: str, source: str) -> None:
    workflow = load_workflow(EXAMPLES / f"{name}.json")
    on_gpu = _gpu_nodes(workflow)
    assert model in on_gpu
    gpu_run = run_template(gpu_manager, name)
    nodes = gpu_run.snapshot().nodes
    placed = {k: v["device"] for k, v in nodes.items() if k in on_gpu}
    assert set(placed.values()) == {"cuda:0"}, placed
    assert not any("CPU instead" in line for v in nodes.values() for line in v["logs"])
    peaks = {k: nodes[k]["metrics"].get("peak_gpu_mb") for k in on_gpu if not nodes[k]["fused_into"]}
    assert all(p is not None and p > 0 for p in peaks.values()), peaks  # measured, not declared
    _assert_within_declared(nodes, peaks)
    assert all(v["device"] == "cpu" for k, v in nodes.items() if k not in on_gpu)

    cpu_run = run_template(manager, name)
    labels = gpu_run.outputs(source)["images"]["labels"]
    gpu_pred = gpu_run.outputs(model)["scores"]["scores"].argmax(1)
    cpu_pred = cpu_run.outputs(model)["scores"]["scores"].argmax(1)
    assert gpu_pred.device.type == "cpu"  # outputs come back to the host for the next agents and the UI
    assert float((gpu_pred == cpu_pred).float().mean()) >= 0.99  # TF32 convolutions may flip a borderline scan
    assert float((gpu_pred == labels).float().mean()) >= 0.8  # chance is 0.5 on balanced SYNTHETIC scans


def test_text_template_runs_on_the_gpu_and_agrees_with_the_cpu(
        gpu_manager: RunManager, manager: RunManager) -> None:
    workflow = load_workflow(EXAMPLES / "nlp-sentiment.json")
    on_gpu = _gpu_nodes(workflow)
    assert {"sentiment", "embed"} <= on_gpu
    gpu_run, cpu_run = run_template(gpu_manager, "nlp-sentiment"), run_template(manager, "nlp-sentiment")
    nodes = gpu_run.snapshot().nodes
    assert {nodes[k]["device"] for k in on_gpu} == {"cuda:0"}
    _assert_within_declared(nodes, {k: nodes[k]["metrics"].get("peak_gpu_mb") for k in on_gpu})
    gpu_scores, cpu_scores = gpu_run.outputs("sentiment")["scores"], cpu_run.outputs("sentiment")["scores"]
    assert gpu_scores["predicted"] == cpu_scores["predicted"]
    labels = gpu_run.outputs("reviews")["texts"]["labels"]
    assert sum(p == y for p, y in zip(gpu_scores["predicted"], labels, strict=True)) / len(labels) >= 0.9
    gpu_vectors, cpu_vectors = gpu_run.outputs("embed")["vectors"], cpu_run.outputs("embed")["vectors"]
    assert gpu_vectors["ids"] == cpu_vectors["ids"]
    assert torch.allclose(gpu_vectors["vectors"], cpu_vectors["vectors"], atol=1e-3)


def test_a_demand_larger_than_the_card_is_a_validation_error() -> None:
    """Against the detected card (no capacity in the file): the finding names the node and the
    GPU memory it lacks, rather than the run waiting forever for memory that never frees."""
    card_mb = torch.cuda.get_device_properties(0).total_memory / 2**20
    workflow = load_workflow(EXAMPLES / "image-pipeline.json")
    data = workflow.model_dump(mode="json")
    node = next(n for n in data["nodes"] if n["agent"] == "vision.classify")
    node["resources"] = {**(node.get("resources") or {}), "device": "cuda", "gpu_memory_mb": 2 * card_mb}
    data["capacity"] = None
    issues = [i for i in validate(Workflow.model_validate(data)) if i.severity == "error"]
    assert [(i.code, i.node) for i in issues] == [(IssueCode.CAPACITY_EXCEEDED, node["id"])]
    assert "MB of GPU memory on cuda:0" in issues[0].message


def test_memory_the_card_already_holds_does_not_count_in_a_nodes_peak(gpu_manager: RunManager) -> None:
    """256 MB kept on the card by the host program before the run: each node's peak is its own
    (the image pipeline's chain takes ~10-50 MB), not the card's level."""
    kept = torch.empty(256 * 2**20, dtype=torch.uint8, device="cuda:0")
    try:
        nodes = run_template(gpu_manager, "image-pipeline").snapshot().nodes
        peaks = [v["metrics"].get("peak_gpu_mb") for v in nodes.values() if v["device"] == "cuda:0"]
        assert peaks and all(p is not None and 0 < p < 200 for p in peaks), peaks
    finally:
        del kept
