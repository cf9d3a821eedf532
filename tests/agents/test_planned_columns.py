"""The columns the planner knows for a model's output before the run (``AgentSpec.columns_fn``) are
those its payload reads as afterwards, and validation uses them: a branch or merge after a
classifier, a threshold's class, a ranker's inputs. (Every template's outputs are checked against
their planned columns in ``template_kit.run_template``.)"""

from __future__ import annotations

import io
import itertools
import json
from pathlib import Path
from typing import Any

from engine.agents.decision import aggregate_risk
from engine.agents.tables import component_names, to_table
from engine.events import RunStatus
from engine.items import planned_items
from engine.registry import default_registry
from engine.runs import RunManager, RunOptions
from engine.validation import validate
from engine.workflow import Workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def chain(*nodes: dict[str, Any]) -> Workflow:
    pairs = [{"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)]
    return Workflow.model_validate({"schema_version": 1, "nodes": list(nodes), "edges": pairs})


def run(manager: RunManager, workflow: Workflow) -> Any:
    handle = manager.submit(workflow, RunOptions(use_cache=False))
    assert handle.wait(60) == RunStatus.SUCCEEDED, handle.snapshot().nodes
    return handle


def test_texts_without_ground_truth_plan_and_give_no_label_column(manager: RunManager):
    texts = {"id": "t", "agent": "text.source", "params": {"mode": "list", "texts": ["great", "awful"]}}
    workflow = chain(texts, {"id": "s", "agent": "text.sentiment"})
    planned = planned_items(workflow, default_registry()).columns_on("s", "scores")
    assert planned == ("text", "predicted", "confidence", "score_negative", "score_neutral", "score_positive")
    assert tuple(to_table(run(manager, workflow).outputs("s")["scores"])[0]) == planned
    branch = {"id": "b", "agent": "flow.branch", "params": {"field": "label", "op": "==", "value": "x"}}
    (issue,) = validate(chain(texts, {"id": "s", "agent": "text.sentiment"}, branch))
    assert issue.code == "missing_columns" and "'label'" in issue.message  # no truth in a typed list


def test_uploaded_images_give_a_subset_of_the_planned_columns(manager: RunManager, tmp_path: Path):
    """An upload carries no ground truth: the planned ``label`` (which a data set's images carry)
    is absent, never a column the plan lacks."""
    from PIL import Image

    path = tmp_path / "scan.png"
    buf = io.BytesIO()
    Image.new("L", (40, 40), 90).save(buf, format="PNG")
    path.write_bytes(buf.getvalue())
    source = {"id": "src", "agent": "vision.source",
              "params": {"dataset": "uploads", "paths": [str(path)], "size": 64, "channels": 1}}
    workflow = chain(source, {"id": "c", "agent": "vision.classify"})
    planned = planned_items(workflow, default_registry())
    actual = run(manager, workflow).outputs("c")
    scores, labels = (tuple(to_table(actual[p])[0]) for p in ("scores", "labels"))
    assert set(scores) < set(planned.columns_on("c", "scores")) and "label" not in scores
    assert labels == planned.columns_on("c", "labels") == ("label", "confidence")


def test_threshold_class_is_checked_against_the_scores_it_receives():
    data = json.loads((EXAMPLES / "finance-risk.json").read_text())
    decision = next(n for n in data["nodes"] if n["id"] == "decision")
    decision["params"]["score_class"] = "fraud"  # a class of the scores before the aggregation
    (issue,) = validate(Workflow.model_validate(data))
    assert (issue.code, issue.node, issue.port) == ("unknown_class", "decision", "scores")
    assert "their classes: 'risk'" in issue.message and issue.hint.startswith("pick one of 'risk'")
    decision["params"]["score_class"] = "rsk"
    (issue,) = validate(Workflow.model_validate(data))
    assert issue.hint == "did you mean 'risk'?"
    decision["params"]["score_class"] = "risk"
    assert validate(Workflow.model_validate(data)) == []
    direct = chain({"id": "tx", "agent": "tabular.source", "params": {"dataset": "transactions"}},
                   {"id": "f", "agent": "tabular.fraud_score"},
                   {"id": "d", "agent": "decision.threshold", "params": {"score_class": "fraud"}})
    assert validate(direct) == []
    columns = planned_items(direct, default_registry())
    assert columns.columns_on("d", "flagged") == ("score", "decision")  # no aggregate: no components


def test_ranker_needs_each_input_its_own_columns():
    data = json.loads((EXAMPLES / "recommendation.json").read_text())
    for edge in data["edges"]:
        if edge["target"] == "rank" and edge["target_port"] == "items":
            edge["source"], edge["source_port"] = "behaviour", "users"  # per-user features: no 'item'
    (issue,) = validate(Workflow.model_validate(data))
    assert (issue.code, issue.node, issue.port) == ("missing_columns", "rank", "items")
    assert "'item'" in issue.message and "'behaviour'" in issue.message


def test_a_type_mismatch_is_not_also_reported_as_missing_columns():
    flow = chain({"id": "t", "agent": "text.source"}, {"id": "s", "agent": "text.sentiment"},
                 {"id": "f", "agent": "tabular.fraud_score"})
    assert [i.code for i in validate(flow)] == ["type_mismatch"]


def test_component_columns_never_take_a_scores_or_threshold_column():
    assert component_names(["fraud", "label", "score_x", "decision", "fraud", None]) == [
        "fraud", "risk_label", "risk_score_x", "risk_decision", "fraud_4", "input5"]
    import torch

    parts = [{"scores": torch.tensor([[0.2, 0.8]]), "classes": ["ok", "label"], "ids": ["a"]},
             {"scores": torch.tensor([[0.6, 0.4]]), "classes": ["ok", "fraud"], "ids": ["a"]}]
    columns, _ = to_table(aggregate_risk(parts, [1.0, 1.0], "weighted_mean", "max"))
    assert list(columns) == ["predicted", "confidence", "score_risk", "risk_label", "fraud"]
    assert columns["risk_label"] == [0.8] and columns["score_risk"] == [0.6]


def test_model_classes_known_without_loading_are_the_trained_models():
    from engine.agents.table_columns import CANCER_CLASSES
    from engine.agents.tabular_data import cancer_config

    assert cancer_config().classes == CANCER_CLASSES


def test_a_limit_cuts_an_aggregates_components_with_its_rows():
    """A limit after the aggregate kept every entity's component values beside the rows it kept:
    the table's columns had different lengths."""
    import torch

    from engine.agents.tables import slice_payload

    parts = [{"scores": torch.tensor([[0.2, 0.8], [0.5, 0.5], [0.9, 0.1]]), "classes": ["ok", "fraud"],
              "ids": ["a", "b", "c"]}]
    columns, ids = to_table(slice_payload(aggregate_risk(parts, [1.0], "weighted_mean", "max"), [0, 2]))
    assert ids == ["a", "c"] and columns["fraud"] == [0.8, 0.1]
    assert {len(v) for v in columns.values()} == {2}
