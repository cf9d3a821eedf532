"""Flow utilities: merge, branch (declared conditions only), limit, routing rules and the sinks
(files stay inside <data folder>/outputs, whatever name a form sends)."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
import torch

from engine.agents.flow import (
    Branch,
    BranchParams,
    CsvSink,
    CsvSinkParams,
    Limit,
    LimitParams,
    Merge,
    MergeParams,
    Route,
    SqliteSink,
    SqliteSinkParams,
)
from engine.agents.routing import RouteParams, RouteRule
from engine.spec import RunContext

PEOPLE = {"columns": {"name": ["ann", "bob", "cy"], "age": [31, 17, 45]}, "ids": ["a", "b", "c"]}
SCORES = {"scores": torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6]]), "classes": ["no", "yes"],
          "ids": ["a", "b", "d"], "labels": ["no", "yes", "no"]}


def run(agent, **inputs):
    return agent.run(inputs, RunContext())


def test_merge_joins_by_id_inner_left_outer():
    inner = run(Merge(MergeParams()), **{"in": [PEOPLE, SCORES]})["table"]
    assert inner["ids"] == ["a", "b"]
    assert inner["columns"]["name"] == ["ann", "bob"] and inner["columns"]["predicted"] == ["no", "yes"]
    left = run(Merge(MergeParams(how="left")), **{"in": [PEOPLE, SCORES]})["table"]
    assert left["ids"] == ["a", "b", "c"] and left["columns"]["predicted"][2] is None
    outer = run(Merge(MergeParams(how="outer")), **{"in": [PEOPLE, SCORES]})["table"]
    assert sorted(outer["ids"]) == ["a", "b", "c", "d"]


def test_merge_on_a_column_repeats_many_matches_and_renames_clashes():
    orders = {"columns": {"name": ["ann", "ann", "cy"], "age": [1, 2, 3]}, "ids": ["o1", "o2", "o3"]}
    out = run(Merge(MergeParams(on="name")), **{"in": [orders, PEOPLE]})["table"]
    assert out["ids"] == ["o1", "o2", "o3"]
    assert out["columns"]["age"] == [1, 2, 3] and out["columns"]["age_2"] == [31, 31, 45]


def test_merge_on_a_missing_column_names_the_columns():
    with pytest.raises(ValueError, match=r"has no column 'zip'.*name, age"):
        run(Merge(MergeParams(on="zip")), **{"in": [PEOPLE, PEOPLE]})


@pytest.mark.parametrize(("field", "op", "value", "match"), [
    ("age", ">=", 18, ["a", "c"]), ("age", "<", "31", ["b"]), ("name", "==", "bob", ["b"]),
    ("name", "contains", "N", ["a"]), ("name", "in", ["cy", "bob"], ["b", "c"]),
    ("name", "in", "ann,cy", ["a", "c"]), ("name", "in", "ann, cy", ["a", "c"]), ("id", "!=", "a", ["b", "c"]),
])
def test_branch_splits_rows_by_declared_condition(field, op, value, match):
    out = run(Branch(BranchParams(field=field, op=op, value=value)), **{"in": PEOPLE})
    assert out["match"]["ids"] == match
    assert sorted(out["match"]["ids"] + out["rest"]["ids"]) == ["a", "b", "c"]


def test_branch_never_evaluates_code():
    out = run(Branch(BranchParams(field="name", op="==", value="__import__('os').getcwd()")),
              **{"in": PEOPLE})
    assert out["match"]["ids"] == []
    with pytest.raises(ValueError):
        BranchParams(field="age", op="lambda", value=1)  # type: ignore[arg-type]


def test_branch_on_scores_uses_the_predicted_class():
    out = run(Branch(BranchParams(field="predicted", op="==", value="yes")), **{"in": SCORES})
    assert out["match"]["ids"] == ["b", "d"]


def test_branch_on_unknown_field_lists_columns():
    with pytest.raises(ValueError, match="no column 'height'"):
        run(Branch(BranchParams(field="height")), **{"in": PEOPLE})


def test_limit_first_and_random_keep_payload_shape():
    first = run(Limit(LimitParams(n=2)), **{"in": SCORES})["out"]
    assert first["ids"] == ["a", "b"] and first["scores"].shape == (2, 2)
    assert first["classes"] == ["no", "yes"] and first["labels"] == ["no", "yes"]
    a = run(Limit(LimitParams(n=2, mode="random", seed=4)), **{"in": PEOPLE})["out"]
    b = run(Limit(LimitParams(n=2, mode="random", seed=4)), **{"in": PEOPLE})["out"]
    assert a == b and len(a["ids"]) == 2
    assert a["columns"]["name"] == [PEOPLE["columns"]["name"][["a", "b", "c"].index(i)] for i in a["ids"]]
    assert run(Limit(LimitParams(n=10)), **{"in": PEOPLE})["out"]["ids"] == ["a", "b", "c"]


def intents(predicted: list[str], confidence: list[float], texts: list[str]) -> dict:
    classes = ["billing", "cancel", "other"]
    scores = torch.tensor([[c if classes[k] == p else (1 - c) / 2 for k in range(3)]
                           for p, c in zip(predicted, confidence, strict=True)])
    return {"scores": scores, "classes": classes, "ids": [f"t{i}" for i in range(len(texts))],
            "texts": texts, "predicted": predicted, "confidence": confidence}


def test_route_applies_rules_escalations_triage_and_fallback():
    ins = intents(["billing", "billing", "cancel", "other"], [0.9, 0.95, 0.3, 0.9],
                  ["charged twice", "charged $900", "cancel it", "URGENT help"])
    ents = {"columns": {"text_id": ["t1", "t1"], "type": ["AMOUNT", "ORDER"],
                        "value": ["$900.00", "#123"], "start": [0, 0], "end": [0, 0]},
            "ids": ["e0", "e1"]}
    params = RouteParams(rules=[RouteRule(intent="billing", queue="money", priority="normal"),
                                RouteRule(intent="cancel", queue="keep", priority="high")])
    cols = run(Route(params), intents=ins, entities=ents)["tickets"]["columns"]
    assert cols["queue"] == ["money", "money", "triage", "general"]
    assert cols["priority"] == ["normal", "high", "high", "high"]
    assert cols["order"][1] == "#123" and "amount 900" in cols["reason"][1]


def test_csv_sink_writes_inside_outputs_whatever_the_name(data_dir: Path):
    for name in ("../../escape.csv", "/etc/passwd", "sub/dir/ok name.csv", ".hidden"):
        written = run(CsvSink(CsvSinkParams(filename=name)), **{"in": PEOPLE})["written"]
        path = Path(written["columns"]["path"][0])
        assert (data_dir / "data" / "outputs").resolve() in path.parents
        assert path.suffix == ".csv"
        with path.open(encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        assert [r["name"] for r in rows] == ["ann", "bob", "cy"] and rows[0]["id"] == "a"
    assert not (data_dir / "escape.csv").exists()


def test_sqlite_sink_writes_typed_rows_and_appends(data_dir: Path):
    params = SqliteSinkParams(database="db", table="people")
    path = Path(run(SqliteSink(params), **{"in": PEOPLE})["written"]["columns"]["path"][0])
    run(SqliteSink(params.model_copy(update={"mode": "append"})), **{"in": PEOPLE})
    with sqlite3.connect(path) as conn:
        rows = conn.execute('SELECT id, name, age FROM people ORDER BY age').fetchall()
        types = {r[1]: r[2] for r in conn.execute("PRAGMA table_info(people)")}
    conn.close()
    assert rows[:2] == [("b", "bob", 17), ("b", "bob", 17)] and len(rows) == 6
    assert types == {"id": "TEXT", "name": "TEXT", "age": "INTEGER"}


@pytest.mark.parametrize("table", ["drop table x", "1abc", "a;b", "a-b", "naïve"])
def test_sqlite_sink_refuses_unsafe_table_names(data_dir: Path, table: str):
    with pytest.raises(ValueError):
        run(SqliteSink(SqliteSinkParams(table=table)), **{"in": PEOPLE})


@pytest.mark.parametrize("on", ["id", "customer"])
def test_the_planned_columns_of_a_join_are_the_ones_it_gives(on: str) -> None:
    """Validation plans a merge's columns (``tables.joined_columns``) to check what its readers
    need; they must be what ``join`` gives, clashing names suffixed by position."""
    from engine.agents import tables

    a = ({"customer": ["c1", "c2"], "x": [1, 2], "y": [3, 4]}, ["r1", "r2"])
    b = ({"customer": ["c1", "c2"], "x": [5, 6], "z": [7, 8]}, ["r1", "r2"])
    c = ({"customer": ["c1", "c2"], "x": [9, 9], "y": [0, 0]}, ["r1", "r2"])
    cols, _ = tables.join([a, b, c], on, "inner")
    assert tables.joined_columns([tuple(t[0]) for t in (a, b, c)], on) == tuple(cols)
    assert tables.joined_columns([tuple(a[0]), None], on) is None


def test_vision_payloads_are_written_with_their_truth_as_class_names(data_dir: Path):
    """A classifier's scores carry the source's ground truth as a tensor of class indices (its
    truth value is an error in Python): written as the class names, beside the prediction."""
    scores = {"scores": torch.tensor([[0.9, 0.1], [0.3, 0.7]]), "classes": ["no_lesion", "lesion"],
              "ids": ["s0", "s1"], "labels": torch.tensor([0, 1])}
    path = Path(run(CsvSink(CsvSinkParams(filename="scans.csv")), **{"in": scores})["written"]["columns"]["path"][0])
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["id"], r["predicted"], r["label"]) for r in rows] == [("s0", "no_lesion", "no_lesion"),
                                                                    ("s1", "lesion", "lesion")]
    vectors = {"vectors": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "ids": ["a", "b"], "labels": torch.tensor([1, 0])}
    assert run(Merge(MergeParams()), **{"in": [vectors, PEOPLE]})["table"]["columns"]["v1"] == [2.0, 4.0]


def test_tensors_are_tables_and_images_are_refused_with_what_to_connect(data_dir: Path):
    from engine.agents import tables

    assert tables.to_table({"tensor": torch.tensor([[1.0, 2.0], [3.0, 4.0]]), "ids": ["a", "b"]}) == (
        {"v0": [1.0, 3.0], "v1": [2.0, 4.0]}, ["a", "b"])
    assert tables.to_table({"tensor": torch.tensor([0.5, 0.25])}) == ({"value": [0.5, 0.25]}, ["0", "1"])
    with pytest.raises(TypeError, match="more than 2 dimensions"):
        tables.to_table({"tensor": torch.zeros(2, 3, 4)})
    with pytest.raises(TypeError, match=r"images cannot be written as a table; .*regions table"):
        run(CsvSink(CsvSinkParams()), **{"in": {"images": torch.zeros(2, 1, 8, 8), "ids": ["a", "b"]}})


def test_table_readers_refuse_image_wires_before_the_run() -> None:
    """flow.merge / branch / the sinks take `any` but read only table-like kinds: an image wire
    is a type_mismatch, with what to connect instead; a custom model's declared tensor is fine."""
    from engine.kinds import DataKind, is_compatible
    from engine.registry import default_registry
    from engine.validation import validate
    from engine.workflow import Workflow

    assert is_compatible(DataKind.SCORES, DataKind.ANY, (DataKind.SCORES,))
    assert not is_compatible(DataKind.IMAGE_BATCH, DataKind.ANY, (DataKind.SCORES,))
    assert is_compatible(DataKind.ANY, DataKind.ANY, (DataKind.SCORES,))
    registry = default_registry()
    for sink in ("flow.sink_csv", "flow.sink_sqlite", "flow.branch", "flow.merge"):
        wf = Workflow.model_validate({"schema_version": 1, "name": "w", "nodes": [
            {"id": "src", "agent": "vision.source"}, {"id": "out", "agent": sink}],
            "edges": [{"source": "src", "target": "out"}]})
        (issue,) = [i for i in validate(wf, registry) if i.code == "type_mismatch"]
        assert issue.node == "out" and "'image_batch' cannot feed input kind 'any' (which reads 'table'" in issue.message
        assert "the explainer's regions table" in issue.hint
    wf = Workflow.model_validate({"schema_version": 1, "name": "w", "nodes": [
        {"id": "src", "agent": "vision.source"},
        {"id": "m", "agent": "custom.model", "params": {"path": "m.onnx", "input_kind": "image_batch",
                                                        "output_kind": "tensor"}},
        {"id": "out", "agent": "flow.sink_csv"}],
        "edges": [{"source": "src", "target": "m"}, {"source": "m", "target": "out"}]})
    assert [i.code for i in validate(wf, registry) if i.code == "type_mismatch"] == []


def test_csv_sink_neutralises_text_a_spreadsheet_would_run(data_dir: Path):
    """A customer's ticket '=HYPERLINK(...)' written to CSV, then opened in Excel, must stay text
    (the same rule as the run page's downloads); numbers, negative ones too, stay numbers."""
    texts = {"columns": {"text": ["=HYPERLINK(\"http://x\",\"click\")", "+1 555", "@SUM(A1)", "fine", "-"],
                         "amount": [-3, 2.5, 0, 1, -1]}, "ids": ["a", "b", "c", "d", "e"]}
    path = Path(run(CsvSink(CsvSinkParams(filename="tickets.csv")), **{"in": texts})["written"]["columns"]["path"][0])
    with path.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["text"] for r in rows] == ["'=HYPERLINK(\"http://x\",\"click\")", "'+1 555", "'@SUM(A1)", "fine", "'-"]
    assert [r["amount"] for r in rows] == ["-3", "2.5", "0", "1", "-1"]


def test_routed_tickets_entities_and_sink_reports_have_known_columns(data_dir: Path) -> None:
    """The customer-service template's branch reads the routed tickets' `priority`: a typo there is
    found before the run, with the column meant; the columns declared are the ones emitted."""
    import json

    from engine.agents.flow import WRITTEN_COLUMNS
    from engine.agents.routing import TICKET_COLUMNS
    from engine.registry import default_registry
    from engine.validation import validate
    from engine.workflow import Workflow

    registry = default_registry()
    data = json.loads((Path(__file__).resolve().parents[2] / "examples" / "customer-service.json").read_text())
    assert [i for i in validate(Workflow.model_validate(data), registry) if i.severity == "error"] == []
    for node in data["nodes"]:
        if node["id"] == "priority":
            node["params"]["field"] = "priorty"
    (issue,) = [i for i in validate(Workflow.model_validate(data), registry) if i.severity == "error"]
    assert issue.code == "missing_columns" and issue.node == "priority"
    assert issue.hint == "did you mean 'priority'? (a column of the table from 'route')"
    intents = {"scores": torch.tensor([[0.9, 0.1]]), "classes": ["refund", "other"], "ids": ["t0"],
               "texts": ["refund order #123"]}
    tickets = run(Route(RouteParams()), intents=intents)["tickets"]
    assert tuple(tickets["columns"]) == TICKET_COLUMNS
    written = run(CsvSink(CsvSinkParams(filename="x.csv")), **{"in": PEOPLE})["written"]
    assert tuple(written["columns"]) == WRITTEN_COLUMNS


@pytest.mark.parametrize(("field", "op", "value", "hint"), [
    ("predicted", "==", "negatve", "did you mean 'negative'?"),  # a class typed wrong
    ("label", "in", ["postive", "neutrl"], "did you mean 'positive'?"),
    ("predicted", ">=", 0.5, "use '==' or 'in' with one of them"),  # the default op and value, field changed
    ("confidence", ">", "high", "compare it with a number"),
    ("score_negative", "==", ["a"], "compare it with a number"),
])
def test_a_branch_condition_no_row_can_meet_is_a_warning_before_the_run(field, op, value, hint):
    """A branch whose condition cannot match sends every row to 'rest' and the run succeeds;
    over a classifier's scores (columns and classes known) validation says so first."""
    import json

    from engine.validation import validate
    from engine.workflow import Workflow

    data = json.loads((Path(__file__).resolve().parents[2] / "examples" / "nlp-sentiment.json").read_text())
    branch = next(n for n in data["nodes"] if n["id"] == "negative")
    branch["params"].update(field=field, op=op, value=value)
    (issue,) = validate(Workflow.model_validate(data))
    assert (issue.code, issue.severity, issue.node) == ("never_matches", "warning", "negative")
    assert issue.hint.startswith(hint)
    scores = {"scores": torch.tensor([[0.8, 0.1, 0.1], [0.1, 0.1, 0.8]]), "ids": ["a", "b"],
              "classes": ["negative", "neutral", "positive"], "labels": ["negative", "positive"]}
    out = run(Branch(BranchParams(field=field, op=op, value=value)), **{"in": scores})
    assert out["match"]["ids"] == []  # what the warning foresaw


@pytest.mark.parametrize(("field", "op", "value"), [
    ("predicted", "==", "negative"), ("predicted", "in", "negative, neutral"), ("confidence", ">=", 0.9),
    ("score_positive", "<", "0.2"), ("text", "contains", "great"), ("predicted", "!=", "x"),
])
def test_conditions_that_can_match_are_not_warned(field, op, value):
    from engine.agents.tables import never_matches
    from engine.items import planned_items
    from engine.registry import default_registry
    from engine.workflow import Workflow

    sentiment = Workflow.model_validate({"schema_version": 1, "nodes": [
        {"id": "t", "agent": "text.source"}, {"id": "s", "agent": "text.sentiment"}],
        "edges": [{"source": "t", "target": "s"}]})
    planned = planned_items(sentiment, default_registry())
    assert never_matches(field, op, value, planned.columns_on("s", "scores"), planned.values_on("s", "scores")) is None


def test_a_name_no_ticket_can_hold_is_warned_even_beside_good_ones():
    """The routed tickets' priority, queue and intent hold known names (``values_fn``): the
    customer-service branch on ``priority in [high, urgnet]`` would quietly drop the urgent
    tickets into 'rest'."""
    import json

    from engine.validation import validate
    from engine.workflow import Workflow

    data = json.loads((Path(__file__).resolve().parents[2] / "examples" / "customer-service.json").read_text())
    branch = next(n for n in data["nodes"] if n["id"] == "priority")
    branch["params"]["value"] = ["high", "urgnet"]
    (issue,) = validate(Workflow.model_validate(data))
    assert (issue.code, issue.severity, issue.node) == ("never_matches", "warning", "priority")
    assert "'urgnet' is not among them, so no row will match it" in issue.message
    assert issue.hint == "did you mean 'urgent'?"
    branch["params"].update(field="queue", op="==", value="billing")  # not a queue of its rules
    (issue,) = validate(Workflow.model_validate(data))
    assert "'queue' holds the values 'billing-team'" in issue.message and issue.hint == "did you mean 'billing-team'?"
    branch["params"].update(field="queue", op="in", value="billing-team, triage")
    assert validate(Workflow.model_validate(data)) == []
