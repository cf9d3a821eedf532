"""The customer-service, NLP-sentiment and recommendation templates validate cleanly and run end to
end through the RunManager on a CPU, and their outputs mean what they should."""

from __future__ import annotations

import csv
import sqlite3
from pathlib import Path

import pytest
from template_kit import check_template_file, run_template

from engine.runs import RunManager

TEMPLATES = ("customer-service", "nlp-sentiment", "recommendation", "support-desks")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.parametrize("name", TEMPLATES)
def test_template_validates_without_findings(name: str):
    check_template_file(name)


def test_customer_service_routes_requests_by_intent(manager: RunManager, data_dir: Path):
    handle = run_template(manager, "customer-service")
    source = handle.outputs("requests")["texts"]
    tickets = handle.outputs("route")["tickets"]["columns"]
    correct = sum(p == y for p, y in zip(tickets["intent"], source["labels"], strict=True))
    assert correct / len(source["labels"]) >= 0.9
    queues = {"billing": "billing-team", "refund": "billing-team", "technical": "tech-support",
              "cancel": "retention", "shipping": "logistics", "account": "account-security"}
    assert all(q in (queues[i], "triage") for i, q in zip(tickets["intent"], tickets["queue"], strict=True))
    outputs = data_dir / "data" / "outputs"
    urgent = read_csv(outputs / "customer_service" / "urgent_tickets.csv")
    other = read_csv(outputs / "customer_service" / "other_tickets.csv")
    assert urgent and all(r["priority"] in ("high", "urgent") for r in urgent)
    assert all(r["priority"] in ("low", "normal") for r in other)
    assert len(urgent) + len(other) == len(source["texts"])
    with sqlite3.connect(outputs / "customer_service.sqlite") as conn:
        n = conn.execute("SELECT COUNT(*) FROM tickets").fetchone()[0]
        with_order = conn.execute("SELECT COUNT(*) FROM tickets WHERE \"order\" != ''").fetchone()[0]
    conn.close()
    assert n == len(source["texts"]) and with_order > 0


def test_support_desks_run_one_triage_component_with_two_settings(manager: RunManager, data_dir: Path):
    handle = run_template(manager, "support-desks")
    general = handle.outputs("general/route")["tickets"]["columns"]
    payments = handle.outputs("payments/route")["tickets"]["columns"]
    assert general["queue"] == payments["queue"]  # one intent model and one set of rules in both desks
    order = ["low", "normal", "high", "urgent"]
    assert all(order.index(p) >= order.index(g) for p, g in zip(payments["priority"], general["priority"], strict=True))
    raised = sum(order.index(p) > order.index(g) for p, g in zip(payments["priority"], general["priority"], strict=True))
    assert raised >= 3  # the payments desk escalates requests that mention an amount
    outputs = data_dir / "data" / "outputs" / "support_desks"
    for desk, tickets in (("general", general), ("payments", payments)):
        rows = read_csv(outputs / f"{desk}.csv")
        assert [r["priority"] for r in rows] == list(tickets["priority"])


def test_nlp_sentiment_scores_reviews_correctly(manager: RunManager, data_dir: Path):
    run_template(manager, "nlp-sentiment")
    folder = data_dir / "data" / "outputs" / "sentiment"
    rows = read_csv(folder / "reviews_scored.csv")
    assert len(rows) == 90 and "v31" in rows[0]
    accuracy = sum(r["predicted"] == r["label"] for r in rows) / len(rows)
    assert accuracy >= 0.9
    negative = read_csv(folder / "negative_reviews.csv")
    assert negative and all(r["predicted"] == "negative" for r in negative)
    assert len(negative) + len(read_csv(folder / "other_reviews.csv")) == 90


def test_recommendation_gives_top10_matching_user_tastes(manager: RunManager, data_dir: Path):
    handle = run_template(manager, "recommendation")
    rows = read_csv(data_dir / "data" / "outputs" / "recommendation" / "top10.csv")
    assert len(rows) == 300 * 10
    log = handle.outputs("behaviour")["interactions"]["columns"]
    seen = set(zip(log["user"], log["item"], strict=True))
    assert not any((r["user"], r["item"]) in seen for r in rows)
    share = sum(r["category"] == r["favourite_category"] for r in rows) / len(rows)
    assert share > 0.3  # one category in eight: random ranking would give about 0.125
