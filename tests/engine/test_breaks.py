"""Breakpoint conditions (engine.breaks): the text form, the test on a node's inputs, what
validation says of a condition before a run, and where a component's condition goes inside it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.breaks import check, matching, parse
from engine.components import expand_components
from engine.grouping import ungroup
from engine.validation import validate
from engine.workflow import BreakCondition, Workflow, load_workflow

ROOT = Path(__file__).resolve().parents[2]
SCORES = {"scores": [[0.9, 0.1], [0.45, 0.55], [0.2, 0.8]], "classes": ["refund", "billing"], "ids": ["a", "b", "c"]}


@pytest.mark.parametrize(("text", "port", "field", "op", "value"), [
    ("confidence < 0.6", None, "confidence", "<", 0.6),
    ("intents: predicted == refund", "intents", "predicted", "==", "refund"),
    ("priority in high, urgent", None, "priority", "in", ["high", "urgent"]),
    ("text contains 'late fee'", None, "text", "contains", "late fee"),
    ("score_fraud>=0.9", None, "score_fraud", ">=", 0.9),
    ("tin in a,b", None, "tin", "in", ["a", "b"]),  # 'in' is a word: 'tin' is not split
    ("id != '42'", None, "id", "!=", "42"),  # quoted: text, not a number
    ("'unit price' > 5", None, "unit price", ">", 5.0),  # a column whose name has a space: quoted
    ("orders: `net amount` <= 10", "orders", "net amount", "<=", 10.0),
    ('"a<b" == x', None, "a<b", "==", "x"),  # an operator's sign in a column name
])
def test_the_text_form_reads_port_field_operator_and_value(text: str, port: Any, field: str, op: str, value: Any) -> None:
    condition = parse(text)
    assert (condition.port, condition.field, condition.op, condition.value) == (port, field, op, value)
    assert parse(condition.describe()) == condition  # what it says reads back as the same condition


def test_a_column_whose_name_has_spaces_is_tested_and_said_quoted() -> None:
    table = {"columns": {"unit price": [3.0, 12.5], "item": ["pen", "lamp"]}, "ids": ["r1", "r2"]}
    condition = parse("'unit price' > 5")
    assert condition.describe() == "'unit price' > 5"
    assert check(condition, {"in": table}).why == "'unit price' > 5 holds for 1 of 2 rows"
    assert matching(condition, {"in": table}) == ("in", {"columns": {"unit price": [12.5], "item": ["lamp"]},
                                                         "ids": ["r2"]})


@pytest.mark.parametrize("text", ["", "confidence", "confidence <", "< 0.6", "x ~ 3", "a in"])
def test_text_that_is_not_a_condition_says_the_form(text: str) -> None:
    with pytest.raises(ValueError, match=r"write it as \[PORT:\] FIELD OP VALUE"):
        parse(text)


def test_scores_are_tested_by_class_confidence_and_score_columns() -> None:
    assert check(parse("confidence < 0.6"), {"in": SCORES}).why == "confidence < 0.6 holds for 1 of 3 rows"
    assert check(parse("predicted == billing"), {"in": SCORES}).pause
    assert check(parse("score_refund > 0.95"), {"in": SCORES}).pause is False
    several = check(parse("confidence < 0.6"), {"in": [SCORES, SCORES]})  # a port taking several edges
    assert several.why == "confidence < 0.6 holds for 2 of 6 rows"


def test_matching_gives_the_rows_that_met_the_condition_with_their_ids() -> None:
    port, rows = matching(parse("confidence < 0.6"), {"scores": SCORES})
    assert port == "scores" and rows["ids"] == ["b"] and rows["columns"]["predicted"] == ["billing"]
    assert matching(parse("nope: x > 1"), {"scores": SCORES}) is None
    assert matching(parse("x > 1"), {"scores": SCORES}) is None  # no column x: nothing to show


def test_what_cannot_be_tested_pauses_with_the_reason() -> None:
    assert check(parse("x > 1"), {"a": SCORES, "b": SCORES}).why.endswith("the node has 2 inputs (a, b); name one (PORT: FIELD OP VALUE)")
    assert check(parse("b: x > 1"), {"a": SCORES}).why == "cannot test b: x > 1: nothing arrived at input 'b'"
    images = check(parse("x > 1"), {"in": {"images": [[0.0]]}})
    assert images.pause and "images cannot be written as a table" in images.why


def _route(condition: dict[str, Any] | None, breakpoint: bool = True, node: str = "route") -> list[tuple[str, str, str]]:
    data = json.loads((ROOT / "examples" / "customer-service.json").read_text())
    for n in data["nodes"]:
        if n["id"] == node:
            n.update(breakpoint=breakpoint, break_when=condition)
    return [(i.severity, i.message, i.hint) for i in validate(Workflow.model_validate(data)) if i.code == "break_condition"]


def test_validation_checks_the_condition_against_the_node_s_inputs_and_their_columns() -> None:
    assert _route({"port": "intents", "field": "confidence", "op": "<", "value": 0.6}) == []
    (unnamed,) = _route({"field": "confidence", "op": "<", "value": 0.6})
    assert unnamed[0] == "error" and "names no input (its inputs: intents, entities)" in unnamed[1]
    assert unnamed[2] == "name the input it tests, e.g. 'intents: confidence < 0.6'"
    (typo,) = _route({"port": "intnts", "field": "confidence", "op": "<", "value": 0.6})
    assert typo[0] == "error" and typo[2] == "did you mean 'intents'?"
    (column,) = _route({"port": "intents", "field": "confidense", "op": "<", "value": 0.6})
    assert "tests the column 'confidense', which the table from 'intent' does not have" in column[1]
    assert column[2] == "did you mean 'confidence'?"
    (never,) = _route({"port": "intents", "field": "predicted", "op": "==", "value": "refnd"})
    assert never[0] == "warning" and "will never pause the run" in never[1] and never[2] == "did you mean 'refund'?"
    (idle,) = _route({"port": "intents", "field": "predicted", "op": "==", "value": "refund"}, breakpoint=False)
    assert idle[0] == "warning" and "no breakpoint, so it has no effect" in idle[1]


def test_a_condition_on_images_is_refused() -> None:
    data = json.loads((ROOT / "examples" / "medical-imaging.json").read_text())
    fed = {e["target"] for e in data["edges"]}
    first = next(n for n in data["nodes"] if n["id"] in fed and n["agent"].startswith("vision.") and "preprocess" in n["agent"])
    first.update(breakpoint=True, break_when={"field": "x", "op": ">", "value": 1})
    (found,) = [i for i in validate(Workflow.model_validate(data)) if i.code == "break_condition"]
    assert "carries images" in found.message and found.severity == "error"


def _desks(condition: dict[str, Any] | None) -> Workflow:
    desks = load_workflow(ROOT / "examples" / "support-desks.json")
    return desks.model_copy(update={"nodes": tuple(
        n.model_copy(update={"breakpoint": True, "break_when": BreakCondition.model_validate(condition) if condition else None})
        if n.id == "general" else n for n in desks.nodes)})


def test_a_component_s_condition_goes_to_the_nodes_its_input_feeds_with_their_ports() -> None:
    stopped = _desks({"field": "text", "op": "contains", "value": "refund"})  # triage's only input: 'texts'
    flat = expand_components(stopped)[0]
    conditions = {n.id: n.break_when for n in flat.nodes if n.breakpoint}
    assert sorted(conditions) == ["general/entities", "general/intent"]
    assert all(c is not None and c.field == "text" and c.port is None for c in conditions.values())  # the port inside: their only one
    assert [i for i in validate(stopped) if i.code == "break_condition"] == []
    opened, _ = ungroup(stopped, "general")  # ungrouping keeps it where it stopped
    assert {n.id: n.break_when for n in opened.nodes if n.breakpoint} == {
        "entities": conditions["general/entities"], "intent": conditions["general/intent"]}


def test_a_component_s_condition_without_its_breakpoint_is_a_warning() -> None:
    idle = _desks({"field": "text", "op": "contains", "value": "x"})
    idle = idle.model_copy(update={"nodes": tuple(
        n.model_copy(update={"breakpoint": False}) if n.id == "general" else n for n in idle.nodes)})
    (found,) = [i for i in validate(idle) if i.code == "break_condition"]
    assert found.node == "general" and found.severity == "warning" and "no breakpoint, so it has no effect" in found.message


def test_a_component_s_condition_must_name_one_of_its_inputs() -> None:
    (found,) = [i for i in validate(_desks({"port": "txts", "field": "text", "op": "contains", "value": "x"}))
                if i.code == "break_condition"]
    assert found.node == "general" and "tests input 'txts', which component 'triage' does not have" in found.message
    assert found.hint == "did you mean 'texts'?"
