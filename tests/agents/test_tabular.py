"""Tabular and decision agents: committed MLP weights reproduce their cards, the fraud scorer
ranks injected fraud above normal transactions, the market signal sees the shock, and risk
aggregation and thresholds do the arithmetic they promise."""

from __future__ import annotations

import itertools
import re
from typing import Any

import pytest
import torch

from engine.agents import runtime, tabular_data
from engine.registry import Registry
from engine.spec import RunContext

REGISTRY = Registry()
REGISTRY.register_module("engine.agents.tabular")


def make(name: str, **params: Any) -> Any:
    spec = REGISTRY.get(name)
    agent = spec.build(spec.parse_params(params))
    agent.load("cpu")
    return agent


def card_percent(name: str, label: str) -> float:
    card = runtime.read_card(name)
    assert card is not None, f"card {name}.md is missing"
    match = re.search(rf"\*\*{label}: ([0-9.]+) %\*\*", card)
    assert match, f"card {name}.md has no '{label}' figure"
    return float(match.group(1))


def auc(scores: torch.Tensor, truth: torch.Tensor) -> float:
    pos, neg = scores[truth == 1], scores[truth == 0]
    return float((pos.view(-1, 1) > neg.view(1, -1)).float().mean()
                 + 0.5 * (pos.view(-1, 1) == neg.view(1, -1)).float().mean())


def score(agent_name: str, table: dict[str, Any]) -> dict[str, Any]:
    return make(agent_name).run({"table": table}, RunContext())["scores"]


def test_fraud_scorer_matches_card_and_ranks_fraud_above_normal():
    held_out = score("tabular.fraud_score", tabular_data.transactions_table(10_000, 1))
    value = auc(held_out["scores"][:, 1], held_out["labels"])
    assert value >= 0.9
    assert abs(value * 100 - card_percent("fraud_mlp", "Held-out AUC")) <= 1.5
    fresh = score("tabular.fraud_score", tabular_data.transactions_table(3000, 42))
    p, y = fresh["scores"][:, 1], fresh["labels"]
    assert float(p[y == 1].mean()) > float(p[y == 0].mean()) + 0.4
    assert fresh["entities"][0].startswith("cust-")


def test_credit_scorer_matches_card_and_beats_chance():
    held_out = score("tabular.credit_score", tabular_data.credit_table(5000, 1))
    value = auc(held_out["scores"][:, 1], held_out["labels"])
    assert value >= 0.75  # chance is 0.5
    assert abs(value * 100 - card_percent("credit_mlp", "Held-out AUC")) <= 1.5


def test_diagnosis_on_real_held_out_patients_matches_card():
    table = make("tabular.source", dataset="breast_cancer", n_items=1000).run(
        {}, RunContext())["table"]
    assert len(table["ids"]) == 142  # the held-out split only
    out = score("tabular.diagnose", table)
    acc = float((out["scores"].argmax(1) == out["labels"]).float().mean())
    assert acc >= 0.9  # always "benign" scores about 0.63
    assert abs(acc * 100 - card_percent("diagnose_mlp", "Held-out accuracy")) <= 1.5
    assert out["classes"] == ["malignant", "benign"]


def test_breast_cancer_split_is_disjoint_and_complete():
    train, held_out = tabular_data.cancer_split()
    assert not set(train) & set(held_out) and len(set(train) | set(held_out)) == 569


def test_scorer_names_missing_columns():
    with pytest.raises(ValueError, match="needs the columns"):
        score("tabular.fraud_score", tabular_data.credit_table(5, 0))


def test_market_signal_rises_in_the_shock():
    table = tabular_data.market_table(250, 3)
    series = make("tabular.market_signal", output="series").run({"table": table}, RunContext())
    stress, regime = series["scores"]["scores"][:, 1], series["scores"]["labels"]
    assert float(stress[regime == 1].mean()) > float(stress[regime == 0].mean()) + 0.3
    calm = tabular_data.market_table(250, 3, shock_at=1.0)
    latest = make("tabular.market_signal").run({"table": calm}, RunContext())["scores"]
    shocked = make("tabular.market_signal").run({"table": table}, RunContext())["scores"]
    assert latest["ids"] == ["*"] and float(shocked["scores"][0, 1]) > float(latest["scores"][0, 1])


def _scores(ids: list[str], risk: list[float], cls: str, **extra: Any) -> dict[str, Any]:
    p = torch.tensor(risk)
    return {"scores": torch.stack([1 - p, p], 1), "classes": ["ok", cls], "ids": ids, **extra}


def test_risk_aggregate_weights_pools_and_broadcasts():
    credit = _scores(["a", "b"], [0.2, 0.8], "default")
    fraud = _scores(["t1", "t2", "t3"], [0.1, 0.9, 0.3], "fraud", entities=["a", "a", "b"])
    market = _scores(["*"], [0.5], "stress")
    out = make("decision.risk_aggregate", weights=[2, 1, 1]).run(
        {"scores": [credit, fraud, market]}, RunContext())["scores"]
    assert out["ids"] == ["a", "b"]
    expected = [(2 * 0.2 + 0.9 + 0.5) / 4, (2 * 0.8 + 0.3 + 0.5) / 4]
    assert torch.allclose(out["scores"].view(-1), torch.tensor(expected))
    assert out["components"]["fraud"] == pytest.approx([0.9, 0.3])
    maxed = make("decision.risk_aggregate", combine="max").run(
        {"scores": [credit, fraud]}, RunContext())["scores"]
    assert torch.allclose(maxed["scores"].view(-1), torch.tensor([0.9, 0.8]))


def test_risk_aggregate_explains_a_weight_count_mismatch():
    with pytest.raises(ValueError, match="one weight per input"):
        make("decision.risk_aggregate", weights=[1.0]).run(
            {"scores": [_scores(["a"], [0.1], "x"), _scores(["a"], [0.2], "y")]}, RunContext())


def test_threshold_splits_into_flagged_and_passed():
    scores = _scores(["a", "b", "c"], [0.1, 0.5, 0.9], "risk")
    out = make("decision.threshold", threshold=0.5, flag_label="review").run(
        {"scores": scores}, RunContext())
    assert out["labels"]["labels"] == ["pass", "review", "review"]
    assert out["flagged"]["ids"] == ["b", "c"] and out["passed"]["ids"] == ["a"]
    by_class = make("decision.threshold", threshold=0.5, score_class="ok").run(
        {"scores": scores}, RunContext())
    assert by_class["flagged"]["ids"] == ["a", "b"]
    with pytest.raises(ValueError, match="not one of"):
        make("decision.threshold", score_class="nope").run({"scores": scores}, RunContext())
    blank = make("decision.threshold", threshold=0.5, score_class=" ").run({"scores": scores}, RunContext())
    assert blank["flagged"]["ids"] == ["b", "c"]  # empty: the last class, as its description says


def test_generated_tables_say_what_they_are():
    for name in ("tabular.fraud_score", "tabular.credit_score"):
        assert "GENERATED" in (REGISTRY.get(name).card or "")
    assert "real" in (REGISTRY.get("tabular.diagnose").card or "").lower()
    schema = REGISTRY.get("tabular.source").params.model_json_schema()
    assert "REAL" in schema["properties"]["dataset"]["description"]


@pytest.mark.parametrize("dataset", ["breast_cancer", "credit_applicants", "transactions", "market"])
def test_the_columns_validation_knows_are_the_tables_columns(dataset: str) -> None:
    """``table_columns`` lets validation check columns without loading data; it must say what the
    tables hold (and, for the real table, what scikit-learn ships)."""
    from engine.agents.table_columns import CANCER_FEATURES, DATASET_COLUMNS

    table = make("tabular.source", dataset=dataset, n_items=5).run({}, RunContext())["table"]
    assert tuple(table["columns"]) == DATASET_COLUMNS[dataset]
    if dataset == "breast_cancer":
        assert tabular_data.cancer_config().features == CANCER_FEATURES


def test_validation_finds_a_table_without_the_columns_its_reader_needs() -> None:
    """Before, a scorer fed the wrong data set, or a branch on a column the table lacks, failed at
    run time, after everything upstream had run. Now validation says which columns, and how to
    get them (the source's setting that emits them, or the column meant)."""
    import json
    from pathlib import Path

    from engine.registry import default_registry
    from engine.validation import validate
    from engine.workflow import Workflow

    registry = default_registry()
    data = json.loads((Path(__file__).resolve().parents[2] / "examples" / "finance-risk.json").read_text())
    nodes = {n["id"]: n for n in data["nodes"]}
    assert not validate(Workflow.model_validate(data), registry)
    nodes["applicants"]["params"]["dataset"] = "transactions"
    nodes["market"]["params"]["dataset"] = "credit_applicants"
    found = {i.node: i for i in validate(Workflow.model_validate(data), registry) if i.code == "missing_columns"}
    assert set(found) == {"credit_scoring", "market_signal"}
    assert "'age'" in found["credit_scoring"].message and found["credit_scoring"].port == "table"
    assert found["credit_scoring"].hint.startswith("set dataset of node 'applicants' to 'credit_applicants'")
    assert found["market_signal"].hint.startswith("set dataset of node 'market' to 'market'")

    def flow(*nodes: dict[str, Any]) -> Workflow:
        return Workflow.model_validate({"schema_version": 1, "nodes": list(nodes), "edges": [
            {"source": a["id"], "target": b["id"]} for a, b in itertools.pairwise(nodes)]})

    source = {"id": "tx", "agent": "tabular.source", "params": {"dataset": "transactions"}}
    limit = {"id": "few", "agent": "flow.limit", "params": {"n": 10}}
    typo = {"id": "big", "agent": "flow.branch", "params": {"field": "amout", "op": ">", "value": 100}}
    (issue,) = [i for i in validate(flow(source, limit, typo), registry) if i.code == "missing_columns"]
    assert issue.node == "big" and issue.hint.startswith("did you mean 'amount'?")  # through the limit
    fixed = {**typo, "params": {**typo["params"], "field": "amount"}}
    assert not [i for i in validate(flow(source, limit, fixed), registry) if i.is_error]
    scores = {"id": "fraud", "agent": "tabular.fraud_score"}  # its scores read as a table of known columns
    risky = {"id": "b", "agent": "flow.branch", "params": {"field": "score_fruad", "op": ">=", "value": 0.5}}
    (issue,) = [i for i in validate(flow(source, scores, risky), registry) if i.code == "missing_columns"]
    assert issue.node == "b" and issue.hint.startswith("did you mean 'score_fraud'?")
    risky["params"]["field"] = "score_fraud"
    assert not [i for i in validate(flow(source, scores, risky), registry) if i.is_error]
    custom = {"id": "m", "agent": "custom.model", "params": {"path": "m.onnx", "input_kind": "table"}}
    unknown = {"id": "b", "agent": "flow.branch", "params": {"field": "anything"}}
    assert not [i for i in validate(flow(source, custom, unknown), registry)
                if i.code == "missing_columns"]  # a custom model's output: not known


def test_columns_are_known_only_where_an_agent_says_what_it_emits() -> None:
    """A sink's output (where it wrote, how many rows) or a model's is not its input table: a
    branch after it is not checked against the input's columns (that would refuse a workflow
    that runs)."""
    from engine.registry import default_registry
    from engine.validation import validate
    from engine.workflow import Workflow

    nodes = [{"id": "tx", "agent": "tabular.source", "params": {"dataset": "transactions"}},
             {"id": "csv", "agent": "flow.sink_csv", "params": {"filename": "tx.csv"}},
             {"id": "big", "agent": "flow.branch", "params": {"field": "rows", "op": ">", "value": 0}}]
    wf = Workflow.model_validate({"schema_version": 1, "nodes": nodes, "edges": [
        {"source": "tx", "target": "csv"}, {"source": "csv", "target": "big"}]})
    assert not [i for i in validate(wf, default_registry()) if i.is_error]


def test_the_latest_market_signal_is_planned_as_one_row() -> None:
    """The wire into the aggregate said '250 items' for the one market-wide row it carries."""
    import json
    from pathlib import Path

    from engine.items import planned_items
    from engine.registry import default_registry
    from engine.workflow import Workflow

    data = json.loads((Path(__file__).resolve().parents[2] / "examples" / "finance-risk.json").read_text())
    assert planned_items(Workflow.model_validate(data), default_registry()).items_out["market_signal"] == 1
    next(n for n in data["nodes"] if n["id"] == "market_signal")["params"]["output"] = "series"
    assert planned_items(Workflow.model_validate(data), default_registry()).items_out["market_signal"] == 250


def test_the_cancer_table_is_read_as_scikit_learn_loads_it_without_importing_it(monkeypatch) -> None:
    """The table source reads the CSV scikit-learn ships (importing ``sklearn.datasets`` cost a
    fresh server's first medical run 1.5-2 s); the values, labels and names are scikit-learn's."""
    import numpy as np
    from sklearn.datasets import load_breast_cancer

    tabular_data._cancer_data.cache_clear()
    x, y, features, classes = tabular_data._cancer_data()
    data = load_breast_cancer()
    assert np.array_equal(x, data.data) and np.array_equal(y, data.target)
    assert features == list(data.feature_names) and classes == list(data.target_names)
    assert not x.flags.writeable  # shared by every run of the process

    # where the file is not what the reader knows, scikit-learn's loader is used
    monkeypatch.setattr(tabular_data, "CANCER_CSV", "no_such_table.csv")
    tabular_data._cancer_data.cache_clear()
    try:
        again = tabular_data._cancer_data()
        assert np.array_equal(again[0], data.data) and again[3] == list(data.target_names)
    finally:
        tabular_data._cancer_data.cache_clear()
