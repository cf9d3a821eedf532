"""Item counts of agents that emit one item per group of what they receive (Issue 4: declared vs
measured; the counts are what the canvas's wires say and what time and memory are planned for).

A risk aggregation emits one risk per customer, not per transaction; item features one row per
item of the log, not per event; a collaborative filter one row of scores per user. Each is planned
from the distinct keys its inputs are planned to hold (``AgentSpec.keys_fn`` / ``groups_fn``);
the template runs check the planned rows against the rows each output really holds
(``tests/agents/template_kit.check_planned_rows``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.items import planned_items
from engine.kinds import ENTITY, DataKind
from engine.registry import Registry, agent, default_registry
from engine.spec import Agent, PortSpec
from engine.workflow import Workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def template(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / f"{name}.json").read_text())


def params_of(data: dict[str, Any], node: str) -> dict[str, Any]:
    return next(n for n in data["nodes"] if n["id"] == node).setdefault("params", {})


def plan(data: dict[str, Any]):
    return planned_items(Workflow.model_validate(data), default_registry())


def test_risk_is_planned_per_customer_not_per_transaction() -> None:
    data = template("finance-risk")
    planned = plan(data)
    assert planned.on_port("transactions", "table") == 2000
    assert planned.keys_on("transactions", "table")["customer"] == 200
    assert planned.keys_on("fraud_detection", "scores")[ENTITY] == 200  # pooled by customer
    assert planned.keys_on("credit_scoring", "scores")[ENTITY] == 200  # its rows are its applicants
    assert planned.items_out["risk"] == 200 and planned.items_in["decision"] == 200
    assert planned.on_port("decision", "flagged") == 200  # at most: the threshold picks some

    for node in ("applicants", "transactions"):
        params_of(data, node)["n_customers"] = 50
    params_of(data, "applicants")["n_items"] = 50
    assert plan(data).items_out["risk"] == 50
    params_of(data, "transactions")["n_items"] = 30  # fewer transactions than customers: at most 30 of them
    assert plan(data).keys_on("transactions", "table")["customer"] == 30
    assert plan(data).items_out["risk"] == 50  # the applicants still bring 50


def test_an_aggregate_with_an_input_of_unknown_groups_keeps_the_passed_on_count() -> None:
    data = template("finance-risk")
    data["nodes"].append({"id": "typed", "agent": "test.texts", "params": {"n": 5}})
    data["edges"].append({"source": "typed", "target": "risk"})
    assert plan(data).keys_on("typed", None) == {ENTITY: 5}  # rows are their own groups
    assert plan(data).items_out["risk"] == 200
    data["nodes"][-1] = {"id": "typed", "agent": "test.source"}  # emits a value: its count is unknown
    planned = plan(data)
    assert planned.keys_on("typed", None) == {}
    assert planned.items_out["risk"] == 2000  # as many as the largest input (an upper bound)


def test_item_features_are_planned_per_item_and_scores_per_user() -> None:
    data = template("recommendation")
    params_of(data, "behaviour").update({"n_users": 120, "n_items": 77})
    planned = plan(data)
    assert planned.on_port("items", "items") == 77
    assert planned.on_port("cf", "scores") == 120
    k = params_of(data, "rank").get("k", 10)
    assert planned.on_port("rank", "recommendations") == 120 * k
    assert planned.keys_on("rank", "recommendations") == {"user": 120, "item": 77, ENTITY: 120 * k}


def test_sinks_emit_one_row_saying_where_the_rows_went() -> None:
    planned = plan(template("nlp-sentiment"))
    assert planned.items_in["all_csv"] == 90 and planned.on_port("all_csv", "written") == 1


class _P(BaseModel):
    n: int = 4


@agent("t.log", category="testing", description="a log", params=_P,
       outputs=[PortSpec("rows", DataKind.TABLE), PortSpec("people", DataKind.TABLE)],
       items_fn=lambda p, _: {"rows": p.n * 10, "people": p.n},
       keys_fn=lambda p, _: {"rows": {"who": p.n}, "people": {"who": p.n}})
class _Log(Agent):
    def run(self, inputs, ctx):  # pragma: no cover - planned only
        return {}


@agent("t.per_person", category="testing", description="one row per person",
       inputs=[PortSpec("in", DataKind.TABLE)], outputs=[PortSpec("out", DataKind.TABLE)],
       groups_fn=lambda _p, received: received[0].get("who") if received else None,
       keys_fn=lambda _p, received: {"who": received[0]["who"]} if received and "who" in received[0] else None)
class _PerPerson(Agent):
    def run(self, inputs, ctx):  # pragma: no cover - planned only
        return {}


def test_keys_follow_ports_and_groups_replace_the_passed_on_count() -> None:
    registry = Registry([_Log.spec, _PerPerson.spec])
    workflow = Workflow.model_validate({"schema_version": 1, "name": "g", "nodes": [
        {"id": "log", "agent": "t.log", "params": {"n": 7}},
        {"id": "each", "agent": "t.per_person"}, {"id": "again", "agent": "t.per_person"}],
        "edges": [{"source": "log", "source_port": "rows", "target": "each"},
                  {"source": "each", "target": "again"}]})
    planned = planned_items(workflow, registry)
    assert planned.items_in["each"] == 70 and planned.items_out["each"] == 7
    assert planned.keys_on("log", "people") == {"who": 7, ENTITY: 7}
    assert planned.keys_on("each", None) == {"who": 7, ENTITY: 7}  # its only output, named or not
    assert planned.items_out["again"] == 7
    broken = workflow.model_copy(update={"nodes": (*workflow.nodes[:1],
                                                   workflow.nodes[1].model_copy(update={"agent": "t.unknown"}),
                                                   workflow.nodes[2])})
    assert planned_items(broken, registry).items_out["again"] is None  # nothing known upstream
