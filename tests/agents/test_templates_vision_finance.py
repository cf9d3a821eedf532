"""The medical-imaging (simulated and real) and finance-risk templates validate cleanly, run end to
end through the RunManager on a CPU, and their outputs mean what they should."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.events import RunStatus
from engine.resources import Capacity
from engine.results import ResultStore
from engine.runs import RunHandle, RunManager, RunOptions
from engine.validation import validate
from engine.workflow import load_workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TEMPLATES = ("medical-imaging-simulated", "medical-imaging", "finance-risk")


@pytest.fixture(scope="module")
def manager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunManager]:
    m = RunManager(machine=Capacity(cpu=2, memory_mb=8192, gpus=()),
                   results=ResultStore(tmp_path_factory.mktemp("results")))
    yield m
    m.shutdown()


def run_template(manager: RunManager, name: str, time_scale: float = 1.0) -> RunHandle:
    workflow = load_workflow(EXAMPLES / f"{name}.json")
    handle = manager.submit(workflow, RunOptions(use_cache=False, time_scale=time_scale))
    status = handle.wait(120)
    failed = {k: v.get("error") for k, v in handle.snapshot().nodes.items() if v.get("error")}
    assert status == RunStatus.SUCCEEDED, failed
    return handle


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_validates_without_findings(name: str):
    workflow = load_workflow(EXAMPLES / f"{name}.json")
    assert workflow.description and all(n.position is not None for n in workflow.nodes)
    xs = {n.id: n.position.x for n in workflow.nodes if n.position}
    assert all(xs[e.source] < xs[e.target] for e in workflow.edges)  # laid out left to right
    assert validate(workflow) == []


def test_simulated_template_keeps_the_articles_figures(manager: RunManager):
    workflow = load_workflow(EXAMPLES / "medical-imaging-simulated.json")
    nodes = {n.id: n for n in workflow.nodes}
    assert nodes["preprocessing"].params == {"duration_s": 120}
    assert nodes["preprocessing"].resources["memory_mb"] == 1024
    assert nodes["classification"].params == {"duration_s": 240}
    assert nodes["classification"].resources["memory_mb"] == 2048
    assert workflow.capacity is not None and workflow.capacity.memory_mb == 4096
    handle = run_template(manager, "medical-imaging-simulated", time_scale=0.0005)
    assert handle.outputs("classification")["out"]["duration_s"] == 240


def test_medical_imaging_classifies_explains_and_diagnoses(manager: RunManager):
    handle = run_template(manager, "medical-imaging")
    scans = handle.outputs("scans")["images"]
    scores = handle.outputs("classification")["scores"]
    acc = float((scores["scores"].argmax(1) == scans["labels"]).float().mean())
    assert acc >= 0.8  # chance is 0.5 on balanced SYNTHETIC scans
    regions = handle.outputs("explanation")["regions"]["columns"]
    hits = [math.dist(c, (r, col)) <= 10
            for c, r, col, p in zip(scans["lesion_centers"], regions["center_row"],
                                    regions["center_col"], regions["predicted"], strict=True)
            if c is not None and p == "lesion"]
    assert sum(hits) / len(hits) >= 0.75
    diagnosis = handle.outputs("diagnosis")["scores"]
    assert float((diagnosis["scores"].argmax(1) == diagnosis["labels"]).float().mean()) >= 0.9


def test_finance_risk_flags_riskier_customers(manager: RunManager):
    handle = run_template(manager, "finance-risk")
    applicants = handle.outputs("applicants")["table"]
    transactions = handle.outputs("transactions")["table"]["columns"]
    decision = handle.outputs("decision")
    flagged, passed = decision["flagged"], decision["passed"]
    assert flagged["ids"] and passed["ids"]
    assert set(decision["labels"]["labels"]) == {"review", "approve"}
    defaulted = dict(zip(applicants["ids"], applicants["columns"]["defaulted"], strict=True))
    frauded = {c for c, f in zip(transactions["customer"], transactions["is_fraud"], strict=True) if f}

    def bad_rate(ids: list[str]) -> float:
        return sum(defaulted.get(i, 0) or i in frauded for i in ids) / len(ids)

    assert bad_rate(flagged["ids"]) > 2 * bad_rate(passed["ids"])
    assert {"default", "fraud", "stress"} <= set(flagged["columns"])
