"""Recommendation agents: the MF card's held-out figures are reproduced and beat popularity, the
committed weights fit their log, rankings respect their rules and follow users' tastes."""

from __future__ import annotations

import re
from collections import Counter

import pytest
import torch

from engine.agents import runtime
from engine.agents.recommend import (
    Behaviour,
    BehaviourParams,
    CollaborativeFilter,
    Items,
    MFParams,
    Rank,
    RankParams,
)
from engine.spec import NoParams, RunContext


@pytest.fixture(scope="module")
def shop() -> dict:
    out = Behaviour(BehaviourParams()).run({}, RunContext())
    items = Items(NoParams()).run({"interactions": out["interactions"]}, RunContext())["items"]
    return {**out, "items": items}


def card_rows() -> dict[str, tuple[float, float]]:
    card = runtime.read_card("mf")
    assert card is not None
    rows = re.findall(r"\| (matrix factorisation|popularity baseline) \| ([0-9.]+) % \| ([0-9.]+) \|", card)
    return {name: (float(hr), float(auc)) for name, hr, auc in rows}


def test_held_out_hit_rate_and_auc_match_card_and_beat_popularity():
    from training.mf import evaluate

    with runtime.torch_threads(1):
        m = evaluate()
    card = card_rows()
    assert abs(m["hr"] * 100 - card["matrix factorisation"][0]) <= 1.5
    assert abs(m["auc"] - card["matrix factorisation"][1]) <= 0.015
    assert abs(m["pop_hr"] * 100 - card["popularity baseline"][0]) <= 1.5
    assert m["hr"] > 1.5 * m["pop_hr"] and m["auc"] > m["pop_auc"] + 0.1
    assert m["auc"] > 0.75


def test_committed_weights_are_used_for_their_log_and_fit_it(shop):
    ctx = RunContext()
    scores = CollaborativeFilter(MFParams()).run({"interactions": shop["interactions"]}, ctx)["scores"]
    assert any("trained MF weights" in line for line in ctx.logs)
    cols = shop["interactions"]["columns"]
    u_at = {u: k for k, u in enumerate(scores["ids"])}
    i_at = {i: k for k, i in enumerate(scores["classes"])}
    seen = torch.zeros_like(scores["scores"], dtype=torch.bool)
    for u, i in zip(cols["user"], cols["item"], strict=True):
        seen[u_at[u], i_at[i]] = True
    pos, neg = scores["scores"][seen], scores["scores"][~seen]
    auc = (pos[:, None] > neg[torch.randperm(len(neg))[:2000]][None, :]).float().mean()
    assert auc > 0.85


def test_other_logs_are_trained_on_in_auto_and_refused_in_pretrained():
    small = Behaviour(BehaviourParams(n_users=40, n_items=30, seed=5)).run({}, RunContext())
    ctx = RunContext()
    out = CollaborativeFilter(MFParams(epochs=20)).run({"interactions": small["interactions"]}, ctx)
    assert out["scores"]["scores"].shape == (40, 30)
    assert any("trained MF on the input log" in line for line in ctx.logs)
    with pytest.raises(ValueError, match="not the one the MF weights were trained on"):
        CollaborativeFilter(MFParams(mode="pretrained")).run(
            {"interactions": small["interactions"]}, RunContext())


def test_behaviour_features_agree_with_the_log(shop):
    users = shop["users"]["columns"]
    log = shop["interactions"]["columns"]
    assert sum(users["events"]) == len(log["user"])
    assert sum(users["purchases"]) == Counter(log["event"])["purchase"]
    first = users["user"][0]
    cats = Counter(c for u, c in zip(log["user"], log["category"], strict=True) if u == first)
    assert users["favourite_category"][0] == cats.most_common(1)[0][0]


def test_item_popularity_rank_follows_distinct_users(shop):
    items = shop["items"]["columns"]
    top = items["popularity_rank"].index(1)
    assert items["users"][top] == max(items["users"])


def test_rank_respects_k_seen_items_and_category_cap(shop):
    scores = CollaborativeFilter(MFParams()).run({"interactions": shop["interactions"]},
                                                 RunContext())["scores"]
    rec = Rank(RankParams(k=5, max_per_category=2)).run(
        {"scores": scores, "items": shop["items"], "seen": shop["interactions"]},
        RunContext())["recommendations"]["columns"]
    log = shop["interactions"]["columns"]
    seen = set(zip(log["user"], log["item"], strict=True))
    assert Counter(rec["user"]) == dict.fromkeys(scores["ids"], 5)
    assert not any((u, i) in seen for u, i in zip(rec["user"], rec["item"], strict=True))
    per = Counter(zip(rec["user"], rec["category"], strict=True))
    assert max(per.values()) <= 2


def test_recommendations_follow_each_users_favourite_categories(shop):
    scores = CollaborativeFilter(MFParams()).run({"interactions": shop["interactions"]},
                                                 RunContext())["scores"]
    rec = Rank(RankParams(k=10)).run({"scores": scores, "items": shop["items"],
                                      "seen": shop["interactions"]},
                                     RunContext())["recommendations"]["columns"]
    log = shop["interactions"]["columns"]
    top2: dict[str, set[str]] = {}
    for user in set(log["user"]):
        cats = Counter(c for u, c in zip(log["user"], log["category"], strict=True) if u == user)
        top2[user] = {c for c, _ in cats.most_common(2)}
    share = sum(c in top2[u] for u, c in zip(rec["user"], rec["category"], strict=True)) / len(rec["user"])
    assert share > 0.5  # random items would land in a user's two top categories ~25 % of the time


def test_the_declared_columns_are_the_emitted_ones_and_readers_are_checked(tmp_path) -> None:
    """recommend.behaviour declares each output's columns (a log and per-user features), item
    features theirs; a branch on a typo of a user feature, or a user's own CSV log without a
    timestamp, is refused before the run with the column meant."""
    from engine.agents.table_columns import ITEM_COLUMNS, LOG_COLUMNS, USER_COLUMNS
    from engine.registry import default_registry
    from engine.validation import validate
    from engine.workflow import Workflow

    registry = default_registry()
    behaviour = registry.get("recommend.behaviour")
    out = behaviour.build(behaviour.parse_params({"n_users": 5, "n_items": 6})).run({}, RunContext())
    assert tuple(out["interactions"]["columns"]) == LOG_COLUMNS and tuple(out["users"]["columns"]) == USER_COLUMNS
    items = registry.get("recommend.items")
    table = items.build(items.parse_params({})).run({"interactions": out["interactions"]}, RunContext())["items"]
    assert tuple(table["columns"]) == ITEM_COLUMNS

    def flow(field: str, port: str) -> list[tuple[str, str]]:
        wf = Workflow.model_validate({"schema_version": 1, "name": "w", "nodes": [
            {"id": "b", "agent": "recommend.behaviour"},
            {"id": "x", "agent": "flow.branch", "params": {"field": field, "op": ">", "value": 0.1}}],
            "edges": [{"source": "b", "source_port": port, "target": "x"}]})
        return [(i.code, i.hint) for i in validate(wf, registry) if i.severity == "error"]

    assert flow("purchase_rate", "users") == []
    assert flow("purchase_rates", "users") == [
        ("missing_columns", "did you mean 'purchase_rate'? (a column of the table from 'b')")]
    assert [c for c, _ in flow("purchase_rate", "interactions")] == ["missing_columns"]  # the log has none
    log = tmp_path / "log.csv"
    log.write_text("user,item,event,category,price\nu1,i1,view,books,3.5\n", encoding="utf-8")
    wf = Workflow.model_validate({"schema_version": 1, "name": "w", "nodes": [
        {"id": "t", "agent": "tabular.csv", "params": {"path": str(log)}},
        {"id": "f", "agent": "recommend.items"}], "edges": [{"source": "t", "target": "f"}]})
    (issue,) = [i for i in validate(wf, registry) if i.severity == "error"]
    assert issue.code == "missing_columns" and "'timestamp'" in issue.message
