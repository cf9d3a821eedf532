"""Recommendation agents: user behaviour from a (synthetic) interaction log, item features, a
matrix-factorisation collaborative filter (training/mf.py) and a top-k ranker.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.agents import runtime
from engine.agents.recsys_data import EVENTS, columns_of
from engine.agents.table_columns import ITEM_COLUMNS, LOG_COLUMNS, RECOMMENDATION_COLUMNS, USER_COLUMNS
from engine.agents.torch_agent import TorchAgent
from engine.kinds import DataKind
from engine.registry import agent
from engine.resources import ResourceDemand
from engine.spec import Agent, PortSpec, RunContext

_CFG = ConfigDict(extra="forbid", allow_inf_nan=False)
_COLOR = "#f59e0b"
_PAIR_COLUMNS = ("user", "item")  # what the filter reads of a log (and the ranking of the seen items)
_LOG_IN = PortSpec("interactions", DataKind.TABLE,
                   "interaction log: user, item, event, timestamp, category, price")


class BehaviourParams(BaseModel):
    model_config = _CFG
    n_users: int = Field(300, ge=2, le=100_000, description="users in the synthetic shop")
    n_items: int = Field(200, ge=2, le=100_000, description="items in the synthetic shop")
    events_per_user: int = Field(30, ge=3, le=10_000, description="mean events per user")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="generator seed")


@agent("recommend.behaviour", category="recommendation", label="User behaviour", color=_COLOR,
       description="Generates a synthetic shop's interaction log (views, clicks, purchases) "
       "with a seed, and computes per-user behaviour features from it.",
       outputs=[PortSpec("interactions", DataKind.TABLE, "the (synthetic) interaction log"),
                PortSpec("users", DataKind.TABLE, "per-user behaviour features")],
       params=BehaviourParams, resources=ResourceDemand(cpu=1, memory_mb=64),
       expected_duration_s=0.05, per_item_s=1.2e-5, memory_per_item_mb=4e-4,
       items_fn=lambda p, _: {"interactions": p.n_users * p.events_per_user, "users": p.n_users},
       keys_fn=lambda p, _: {"interactions": {"user": p.n_users, "item": p.n_items}, "users": {"user": p.n_users}},
       columns_fn=lambda _p, _received: {"interactions": LOG_COLUMNS, "users": USER_COLUMNS},
       values_fn=lambda _p, _received: {"interactions": {"event": EVENTS}})
class Behaviour(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from engine.agents.recsys_data import generate_log, user_features

        p: BehaviourParams = self.params  # type: ignore[assignment]
        log = generate_log(p.n_users, p.n_items, p.events_per_user, p.seed)
        ctx.check_cancelled()
        users = user_features(log["columns"])
        ctx.progress(len(log["ids"]), len(log["ids"]))
        ctx.log(f"generated {len(log['ids'])} synthetic events for {p.n_users} users (seed {p.seed})")
        return {"interactions": log, "users": users}


def _distinct(received: list[Mapping[str, int]], key: str) -> int | None:
    """The most distinct ``key`` values (users, items) any input is planned to hold, or None."""
    counts = [n for keys in received if (n := keys.get(key)) is not None]
    return max(counts) if counts else None


def _keys(received: list[Mapping[str, int]], *names: str) -> dict[str, int]:
    """The planned distinct counts of ``names`` an agent passes on from its inputs."""
    return {name: n for name in names if (n := _distinct(received, name)) is not None}


@agent("recommend.items", category="recommendation", label="Item features", color=_COLOR,
       description="Per-item features from an interaction log: category, price, distinct users, "
       "events, purchases, conversion rate, popularity rank.",
       inputs=[_LOG_IN], outputs=[PortSpec("items", DataKind.TABLE, "one row per item")],
       resources=ResourceDemand(cpu=1, memory_mb=32), expected_duration_s=0.005, per_item_s=3e-6,
       memory_per_item_mb=2e-4, needs_columns_fn=lambda _: LOG_COLUMNS,
       columns_fn=lambda _p, _received: ITEM_COLUMNS,
       groups_fn=lambda _p, received: _distinct(received, "item"), keys_fn=lambda _p, received: _keys(received, "item"))
class Items(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from engine.agents.recsys_data import item_features

        table = item_features(columns_of(inputs["interactions"], LOG_COLUMNS))
        ctx.progress(len(table["ids"]), len(table["ids"]))
        return {"items": table}


# per event of the input log (engine.items counts a log's events), about twice what the engine
# measured on 2 vCPUs at 9,000-300,000 events (docs/agents-vision-tabular.md, "Time against size").
# Training: BPR passes over the log, so per epoch, and each pass costs ~150 ns + 4 ns per latent
# factor an event (measured 220 / 392 / 629 ns at dim 16 / 64 / 128); "auto" is planned as
# training, since only the log the weights were trained on can use them.
_MF_FIT_S, _MF_FIT_PER_DIM_S, _MF_SCORE_S = 3e-7, 8e-9, 2e-6
_MF_FIT_MB, _MF_SCORE_MB = 6e-4, 1e-4


# The planner counts a log by its events; the filter's scores have a row per user and a ranking k
# rows per user, and the synthetic shop's users make this many events each on average
# (BehaviourParams), so a plan of those rows takes a log of n events to hold about
# n / _EVENTS_PER_USER users.
_EVENTS_PER_USER = BehaviourParams.model_fields["events_per_user"].default


class MFParams(BaseModel):
    model_config = _CFG
    mode: Literal["auto", "pretrained", "fit"] = Field(
        "auto", description="auto: the trained weights when the log is the one they were trained "
        "on, else train on the input log; pretrained: require that; fit: always train here")
    dim: int = Field(16, ge=2, le=256, description="latent factors (fit)")
    epochs: int = Field(60, ge=1, le=2000, description="training epochs (fit)")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="training seed (fit)")


@agent("recommend.mf", category="recommendation", label="Collaborative filter (MF)",
       color=_COLOR,
       description="Matrix-factorisation collaborative filter (BPR) that scores every item for "
       "every user of an interaction log; uses our trained weights or trains on the log.",
       inputs=[_LOG_IN],
       outputs=[PortSpec("scores", DataKind.SCORES, "users × items affinity scores")],
       params=MFParams, resources=ResourceDemand(cpu=1, memory_mb=128, device="any"),
       expected_duration_s=0.02, card=runtime.read_card("mf"),
       per_item_fn=lambda p: _MF_SCORE_S if p.mode == "pretrained" else
       (_MF_FIT_S + _MF_FIT_PER_DIM_S * p.dim) * p.epochs,
       memory_fn=lambda p, n: n * (_MF_SCORE_MB if p.mode == "pretrained" else _MF_FIT_MB),
       gpu_memory_fn=runtime.fixed_gpu_memory(per_item_mb=1e-4),  # 5.5e-5 MB an interaction measured
       items_fn=lambda p, n: None if n is None else max(1, n // _EVENTS_PER_USER),  # a row of scores per user
       groups_fn=lambda _p, received: _distinct(received, "user"),
       keys_fn=lambda _p, received: _keys(received, "user"),
       needs_columns_fn=lambda _: _PAIR_COLUMNS)
class CollaborativeFilter(TorchAgent):
    def build(self, device: str) -> None:
        self.pretrained = runtime.load_weights("mf") if self.params.mode != "fit" else None  # type: ignore[attr-defined]

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        from engine.agents.recsys_data import fingerprint, log_index
        from engine.agents.recsys_model import MatrixFactorization, fit_mf

        p: MFParams = self.params  # type: ignore[assignment]
        self.ready(ctx)
        users, items, pairs = log_index(columns_of(inputs["interactions"], _PAIR_COLUMNS))
        state = dict(self.pretrained) if self.pretrained is not None else None
        matches = state is not None and int(state.pop("fingerprint")[0]) == fingerprint(users, items, pairs)
        if p.mode == "pretrained" and not matches:
            raise ValueError("the interaction log is not the one the MF weights were trained on; "
                             "set mode to 'auto' or 'fit' to train on this log")
        with runtime.torch_threads(ctx.threads), torch.no_grad():
            if matches and state is not None:
                model = MatrixFactorization(len(users), len(items), state["user.weight"].shape[1])
                model.load_state_dict(state)
                ctx.log("using the trained MF weights (the log matches their fingerprint)")
            else:
                with torch.enable_grad():
                    model = fit_mf(pairs, len(users), len(items), dim=p.dim, epochs=p.epochs,
                                   seed=p.seed, on_epoch=lambda e: self._tick(ctx, e, p.epochs))
                ctx.log(f"trained MF on the input log ({len(pairs)} pairs, {p.epochs} epochs)")
            scores = model.to(self.device).all_scores().cpu()
        ctx.progress(len(users), len(users))
        return {"scores": {"scores": scores, "classes": items, "ids": users}}

    @staticmethod
    def _tick(ctx: RunContext, epoch: int, total: int) -> None:
        ctx.check_cancelled()
        ctx.progress(epoch + 1, total)


class RankParams(BaseModel):
    model_config = _CFG
    k: int = Field(10, ge=1, le=1000, description="recommendations per user")
    popularity_weight: float = Field(
        0.0, ge=0, le=10, description="add this × log(1 + distinct users) of the item to its "
        "score (needs the items input)")
    max_per_category: int = Field(0, ge=0, le=1000,
                                  description="at most this many items of one category (0: no limit)")
    exclude_seen: bool = Field(True, description="leave out items the user already interacted with")


@agent("recommend.rank", category="recommendation", label="Rank top-k", color=_COLOR,
       description="Top-k items per user from collaborative-filter scores, optionally blended "
       "with item popularity, diversified by category, and without already-seen items.",
       inputs=[PortSpec("scores", DataKind.SCORES, "users × items scores"),
               PortSpec("items", DataKind.TABLE, "item features (category, users)", required=False),
               PortSpec("seen", DataKind.TABLE, "interaction log, to exclude seen items",
                        required=False)],
       outputs=[PortSpec("recommendations", DataKind.TABLE, "user, rank, item, score, category")],
       params=RankParams, resources=ResourceDemand(cpu=1, memory_mb=64),
       expected_duration_s=0.06, per_item_s=1e-5,
       items_fn=lambda p, n: None if n is None else max(1, n // _EVENTS_PER_USER) * p.k,
       groups_fn=lambda p, received: None if (users := _distinct(received, "user")) is None else users * p.k,
       keys_fn=lambda _p, received: _keys(received, "user", "item"),
       needs_columns_fn=lambda _: {"items": ("item",), "seen": _PAIR_COLUMNS},
       columns_fn=lambda _p, _received: RECOMMENDATION_COLUMNS)
class Rank(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        p: RankParams = self.params  # type: ignore[assignment]
        sc = inputs["scores"]
        scores, users, items = torch.as_tensor(sc["scores"]).float().clone(), sc["ids"], sc["classes"]
        item_at = {str(i): k for k, i in enumerate(items)}
        category = [""] * len(items)
        if inputs.get("items") is not None:
            cols = columns_of(inputs["items"], ("item",))
            for k, i in enumerate(cols["item"]):
                if str(i) in item_at:
                    category[item_at[str(i)]] = str(cols.get("category", [""] * len(cols["item"]))[k])
                    if p.popularity_weight and "users" in cols:
                        scores[:, item_at[str(i)]] += p.popularity_weight * math.log1p(cols["users"][k])
        if p.exclude_seen and inputs.get("seen") is not None:
            log = columns_of(inputs["seen"], _PAIR_COLUMNS)
            user_at = {str(u): k for k, u in enumerate(users)}
            for u, i in zip(log["user"], log["item"], strict=True):
                if str(u) in user_at and str(i) in item_at:
                    scores[user_at[str(u)], item_at[str(i)]] = float("-inf")
        out: dict[str, list[Any]] = {c: [] for c in RECOMMENDATION_COLUMNS}
        limit = len(users) if ctx.max_items is None else min(len(users), ctx.max_items)
        for part in runtime.batches(limit, ctx.batch_size):
            ctx.check_cancelled()
            for u in range(part.start, part.stop):
                self._top_k(scores[u], users[u], items, category, out)
            ctx.progress(part.stop, limit)
        ids = [f"{u}/{r}" for u, r in zip(out["user"], out["rank"], strict=True)]
        return {"recommendations": {"columns": out, "ids": ids}}

    def _top_k(self, row: Any, user: str, items: list[str], category: list[str],
               out: dict[str, list[Any]]) -> None:
        p: RankParams = self.params  # type: ignore[assignment]
        per_cat: dict[str, int] = {}
        rank = 0
        for k in row.argsort(descending=True).tolist():
            if rank >= p.k or not math.isfinite(float(row[k])):
                break
            if p.max_per_category and per_cat.get(category[k], 0) >= p.max_per_category:
                continue
            per_cat[category[k]] = per_cat.get(category[k], 0) + 1
            rank += 1
            for key, value in zip(out, (user, rank, items[k], round(float(row[k]), 4), category[k]),
                                  strict=True):
                out[key].append(value)
