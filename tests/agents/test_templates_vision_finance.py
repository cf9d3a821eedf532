"""The medical-imaging (simulated and real) and finance-risk templates validate cleanly, run end to
end through the RunManager on a CPU, and their outputs mean what they should."""

from __future__ import annotations

import math

import pytest
from template_kit import EXAMPLES, check_template_file, run_template

from engine.runs import RunManager
from engine.workflow import load_workflow

TEMPLATES = ("medical-imaging-simulated", "medical-imaging", "finance-risk", "image-pipeline")


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_validates_without_findings(name: str):
    check_template_file(name)


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


def test_image_pipeline_runs_fused_and_classifies(manager: RunManager):
    handle = run_template(manager, "image-pipeline")
    scans = handle.outputs("scans")["images"]
    scores = handle.outputs("classify")["scores"]
    assert len(scores["ids"]) == 256 and scores["ids"] == scans["ids"]
    acc = float((scores["scores"].argmax(1) == scans["labels"]).float().mean())
    assert acc >= 0.8  # chance is 0.5 on balanced SYNTHETIC scans
    nodes = handle.snapshot().nodes
    assert any(line.startswith("fused preprocess -> classify: 8 batches") for line in nodes["classify"]["logs"])
    assert nodes["classify"]["fused_into"] == "preprocess" and nodes["preprocess"]["chain"] == ["classify"]
