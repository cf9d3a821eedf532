"""Tabular and decision agents: table source, MLP scorers (fraud, credit, diagnosis), a market
stress signal, risk aggregation per entity and a threshold that splits entities into pass/flag.

Scores convention: the LAST class of a scores payload is the risky one (default, fraud,
stress); decision agents use it unless told a class (``score_class``). Torch is imported lazily.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.agents.runtime import as_list, batches, fixed_gpu_memory, read_card, resolve_device, torch_threads
from engine.agents.table_columns import (
    CANCER_CLASSES,
    CANCER_FEATURES,
    CREDIT_CLASSES,
    CREDIT_FEATURES,
    DATASET_COLUMNS,
    FRAUD_CLASSES,
    FRAUD_FEATURES,
    MARKET_CLASSES,
)
from engine.agents.tables import LABELS_COLUMNS, component_names, components_in, scores_columns
from engine.kinds import ENTITY, DataKind, score_classes
from engine.registry import agent
from engine.resources import ResourceDemand
from engine.spec import Agent, PortSpec, RunContext, picks

_CFG = ConfigDict(extra="forbid", allow_inf_nan=False)
_TABULAR, _DECISION = "#10b981", "#f59e0b"
_TABLE_IN = PortSpec("table", DataKind.TABLE, "rows with the model's feature columns")
_SCORES_OUT = PortSpec("scores", DataKind.SCORES, "class probabilities per row")


class TableSourceParams(BaseModel):
    model_config = _CFG
    dataset: Literal["breast_cancer", "credit_applicants", "transactions", "market"] = Field(
        "credit_applicants",
        description="breast_cancer: REAL scikit-learn table; the others are GENERATED with "
        "known ground truth (credit defaults, injected card fraud, a market shock)")
    n_items: int = Field(200, ge=1, le=1_000_000, description="rows (days for market)")
    seed: int = Field(42, ge=0, le=2**31 - 1, description="random seed of generated tables")
    n_customers: int = Field(200, ge=1, le=1_000_000,
                             description="transactions: customers cust-0..N-1 they belong to")
    split: Literal["held_out", "train", "all"] = Field(
        "held_out", description="breast_cancer rows: the held-out 25 % never used in training")


CANCER_ROWS = {"held_out": 142, "train": 427, "all": 569}  # a test checks them against the split


def _table_source_items(p: TableSourceParams) -> int:
    """How many rows ``tabular.source`` emits for these parameters."""
    if p.dataset == "breast_cancer":
        return min(p.n_items, CANCER_ROWS[p.split])
    return min(p.n_items, p.n_customers) if p.dataset == "credit_applicants" else p.n_items


def _table_source_keys(p: TableSourceParams) -> dict[str, int] | None:
    """The customers a generated transaction table's rows belong to (at most one per row)."""
    return {"customer": min(p.n_items, p.n_customers)} if p.dataset == "transactions" else None


@agent("tabular.source", category="tabular", label="Table source", color=_TABULAR,
       description="Emits a table: the REAL breast-cancer diagnosis table, or GENERATED credit "
       "applicants, card transactions with injected fraud, or a market price series.",
       outputs=[PortSpec("table", DataKind.TABLE, "columns + ids; ground truth in 'target'")],
       params=TableSourceParams, resources=ResourceDemand(cpu=1, memory_mb=16),
       expected_duration_s=0.01, per_item_s=2e-6, items_fn=lambda p, _: _table_source_items(p),
       memory_per_item_mb=5e-4, columns_fn=lambda p, _: DATASET_COLUMNS[p.dataset],
       keys_fn=lambda p, _: _table_source_keys(p))
class TableSource(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from engine.agents import tabular_data as data

        p = self.params
        n = min(p.n_items, ctx.max_items or p.n_items)
        if p.dataset == "breast_cancer":
            table = data.cancer_table(p.split, n, p.seed)
        elif p.dataset == "transactions":
            table = data.transactions_table(n, p.seed, p.n_customers)
        elif p.dataset == "market":
            table = data.market_table(n, p.seed)
        else:
            table = data.credit_table(min(n, p.n_customers), p.seed)
        ctx.progress(len(table["ids"]), len(table["ids"]))
        return {"table": table}


class CsvTableParams(BaseModel):
    model_config = _CFG
    path: str = Field("", max_length=1000, description="the CSV (or TSV) file: upload it in Your files; "
                      "relative paths start in the data folder")
    id_column: str = Field("", max_length=200, description="the column holding row ids (empty: a "
                           "column named id if there is one, else row-1, row-2, ...)")
    target: str = Field("", max_length=200, description="the column holding the ground truth, if "
                        "any: scorers then report their accuracy against it")
    max_rows: int | None = Field(None, ge=1, le=10_000_000, description="read at most this many rows "
                                 "(empty: all)")


def _csv_shape(p: CsvTableParams) -> tuple[tuple[str, ...], int] | None:
    from engine.agents.table_io import table_shape

    return table_shape(p.path, p.id_column)


def _csv_names(p: CsvTableParams) -> dict[str, tuple[str, ...]]:
    from engine.agents.table_io import table_names

    return table_names(p.path, p.id_column)


def _csv_problem(p: CsvTableParams) -> str | None:
    from engine.agents.table_io import table_problem

    return table_problem(p.path, p.id_column, p.target)


def _csv_rows(p: CsvTableParams) -> int | None:
    shape = _csv_shape(p)
    return None if shape is None else min(shape[1], p.max_rows or shape[1])


def _csv_cells_per_row(p: CsvTableParams) -> int:
    """Cells in one row with the id (10 when the file cannot be read yet): reading costs ~0.75 µs
    and ~95 bytes at peak per cell (bench/agents_bench.py --only sizes)."""
    shape = _csv_shape(p)
    return 10 if shape is None else len(shape[0]) + 1


@agent("tabular.csv", category="tabular", label="CSV table", color=_TABULAR,
       description="Reads your own table from a CSV file (comma, semicolon or tab): numbers as "
       "numbers, an id column, and optionally the column holding the ground truth.",
       outputs=[PortSpec("table", DataKind.TABLE, "the file's columns + ids")],
       params=CsvTableParams, resources=ResourceDemand(cpu=1, memory_mb=16),
       expected_duration_s=0.01, per_item_fn=lambda p: 1e-6 * _csv_cells_per_row(p),
       memory_fn=lambda p, rows: rows * _csv_cells_per_row(p) * 1.5e-4, items_fn=lambda p, _: _csv_rows(p),
       files_fn=lambda p: ("path", [p.path]), file_check_fn=lambda p: _csv_problem(p),
       columns_fn=lambda p, _: None if (shape := _csv_shape(p)) is None else shape[0],
       values_fn=lambda p, _: {"table": _csv_names(p)})
class CsvTable(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from engine.agents.table_io import read_table, target_problem

        p: CsvTableParams = self.params  # type: ignore[assignment]
        limits = [n for n in (p.max_rows, ctx.max_items) if n]
        table = read_table(p.path, p.id_column, min(limits) if limits else None)
        if problem := target_problem(list(table.columns), p.target):
            raise ValueError(problem)
        numbers = [c for c, kind in table.types.items() if kind != "str"]
        ctx.log(f"read {len(table.ids):,} rows x {len(table.columns)} columns "
                f"({len(numbers)} numeric) from {p.path}")
        ctx.progress(len(table.ids), len(table.ids))
        payload: dict[str, Any] = {"columns": table.columns, "ids": table.ids}
        if p.target:
            payload["target"] = p.target
        return {"table": payload}


class _MlpScorer(Agent):
    """Score a table with a trained MLP; subclasses name the weights and the config."""

    weights: str = ""
    entity_column: str | None = None

    def config(self) -> Any:
        raise NotImplementedError

    def load(self, device: str) -> None:
        from engine.agents.nets import mlp_for

        self.device = resolve_device(device)
        self.model = mlp_for(self.weights, self.config(), self.device)

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        device = resolve_device(ctx.device, ctx)
        if not hasattr(self, "model") or device != self.device:
            self.load(device)
        table, config = inputs["table"], self.config()
        columns = table["columns"]
        missing = [f for f in config.features if f not in columns]
        if missing:
            raise ValueError(
                f"{self.spec.name} needs the columns {missing[:5]} which the table lacks; "
                f"connect a table of {config.data} (tabular.source)")
        x = torch.tensor([_numbers(columns[f], f, table["ids"]) for f in config.features]).T
        x = x[: ctx.max_items] if ctx.max_items else x
        out = []
        with torch_threads(ctx.threads), torch.no_grad():
            for part in batches(len(x), ctx.batch_size):
                ctx.check_cancelled()
                out.append(self.model(x[part].to(self.device)).softmax(1).cpu())
                ctx.progress(part.stop, len(x))
        scores, n = torch.cat(out), len(x)
        truth = _truth(table, config, n)
        if truth is not None and n:
            ctx.log(_accuracy_line(scores.argmax(1), truth, list(config.classes)))
        payload: dict[str, Any] = {"scores": scores, "classes": list(config.classes),
                                   "ids": table["ids"][:n], "labels": truth}
        if self.entity_column and self.entity_column in columns:
            payload["entities"] = list(columns[self.entity_column][:n])
        return {"scores": payload}


def _numbers(values: Any, column: str, ids: list[str]) -> list[float]:
    """A feature column as floats, or an error naming the first cell that is not a number."""
    out = []
    for i, v in enumerate(values.tolist() if hasattr(values, "tolist") else list(values)):
        if isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v:
            out.append(float(v))
            continue
        row = ids[i] if i < len(ids) else f"row {i + 1}"
        what = "is empty" if v is None or v == "" else f"holds {str(v)[:40]!r}"
        raise ValueError(f"column {column!r} {what} at {row}; the model needs a number in every row: "
                         "fill it in or drop the row (a flow.branch on that column can drop it)")
    return out


def _accuracy_line(predicted: Any, truth: Any, classes: list[str]) -> str:
    """The log line a scorer writes when its table carries the ground truth: accuracy, and how
    many of the risky (last) class it found, which a rare class's accuracy hides."""
    accuracy = float((predicted == truth).float().mean())
    risky = len(classes) - 1
    actual = int((truth == risky).sum())
    found = int(((predicted == risky) & (truth == risky)).sum())
    flagged = int((predicted == risky).sum())
    return (f"accuracy against ground truth: {accuracy:.3f} ({len(truth):,} rows); {classes[risky]}: "
            f"{found} of {actual} found, {flagged - found} flagged wrongly")


def _truth(table: dict, config: Any, n: int) -> Any:
    """Ground-truth class indices when the table carries its target column (its values class
    names or indices); None when it does not, or when a value is neither."""
    import torch

    target = table.get("target")
    if not target or target not in table["columns"]:
        return None
    indices = []
    column = table["columns"][target]
    for v in (column.tolist() if hasattr(column, "tolist") else list(column))[:n]:
        if isinstance(v, str) and v in config.classes:
            indices.append(config.classes.index(v))
        elif isinstance(v, numbers.Real) and not isinstance(v, bool) and float(v).is_integer() \
                and 0 <= int(v) < len(config.classes):
            indices.append(int(v))
        else:
            return None
    return torch.tensor(indices)


def _scorer(name: str, label: str, description: str, card: str, per_item_s: float,
            features: tuple[str, ...], classes: tuple[str, ...], entity: str | None = None) -> Any:
    """The ``agent`` decorator of an MLP scorer; ``entity``: the column whose value groups its
    rows (a transaction's customer), kept as the scores' ``entities``."""

    def entity_keys(_p: BaseModel, received: list[Mapping[str, int]]) -> dict[str, int] | None:
        groups = received[0].get(entity) if entity and received else None
        return None if groups is None else {ENTITY: groups, entity: groups}  # type: ignore[dict-item]

    # the scores' columns list the ground truth: a table may carry its target (tabular.source's
    # data sets do; a CSV table when its target is set)
    declare = agent(name, category="tabular", label=label, color=_TABULAR, description=description,
                    inputs=[_TABLE_IN], outputs=[_SCORES_OUT],
                    resources=ResourceDemand(cpu=1, memory_mb=16, device="any"),
                    expected_duration_s=0.02, per_item_s=per_item_s, card=read_card(card),
                    memory_per_item_mb=6e-4, needs_columns_fn=lambda _: features,
                    gpu_memory_fn=fixed_gpu_memory(per_item_mb=5e-4, weights_mb=1.0),  # 0.3 kB a row measured
                    columns_fn=lambda _p, _received: scores_columns(classes), keys_fn=entity_keys)

    def wrap(cls: type[_MlpScorer]) -> type[_MlpScorer]:
        cls.entity_column = entity
        return declare(cls)  # type: ignore[no-any-return]

    return wrap


@_scorer("tabular.fraud_score", "Fraud score", "An MLP trained on GENERATED card transactions "
         "scores each transaction legit / fraud (keeps the customer as the entity).", "fraud_mlp", 5e-6,
         FRAUD_FEATURES, FRAUD_CLASSES, entity="customer")
class FraudScore(_MlpScorer):
    weights = "fraud_mlp"

    def config(self) -> Any:
        from engine.agents.tabular_data import FRAUD

        return FRAUD


@_scorer("tabular.credit_score", "Credit score", "An MLP trained on GENERATED applicants "
         "gives each applicant's probability of default.", "credit_mlp", 5e-6, CREDIT_FEATURES, CREDIT_CLASSES)
class CreditScore(_MlpScorer):
    weights = "credit_mlp"

    def config(self) -> Any:
        from engine.agents.tabular_data import CREDIT

        return CREDIT


@_scorer("tabular.diagnose", "Diagnose (breast cancer)", "An MLP trained on the REAL "
         "scikit-learn breast-cancer table: malignant / benign from 30 cell measurements.",
         "diagnose_mlp", 2e-5, CANCER_FEATURES, CANCER_CLASSES)
class Diagnose(_MlpScorer):
    weights = "diagnose_mlp"

    def config(self) -> Any:
        from engine.agents.tabular_data import cancer_config

        return cancer_config()


class MarketParams(BaseModel):
    model_config = _CFG
    window: int = Field(10, ge=2, le=250, description="short volatility window, days")
    long_window: int = Field(60, ge=5, le=2000, description="reference volatility window, days")
    output: Literal["latest", "series"] = Field(
        "latest", description="latest: one market-wide score (applies to every entity); "
        "series: one score per day")


@agent("tabular.market_signal", category="tabular", label="Market stress signal",
       color=_TABULAR, description="Market stress from a price series: short vs long "
       "volatility and drawdown, computed with torch (no training).",
       inputs=[PortSpec("table", DataKind.TABLE, "a series with a 'price' column")],
       outputs=[_SCORES_OUT], params=MarketParams,
       resources=ResourceDemand(cpu=1, memory_mb=8), expected_duration_s=0.015,
       needs_columns_fn=lambda _: ("price",),
       items_fn=lambda p, n: 1 if p.output == "latest" else n,  # latest: one market-wide row
       columns_fn=lambda p, received: scores_columns(
           MARKET_CLASSES, truth=p.output == "series" and (not received or received[0] is None
                                                          or "regime" in received[0])))
class MarketSignal(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        p, table = self.params, inputs["table"]
        if "price" not in table["columns"]:
            raise ValueError("tabular.market_signal needs a 'price' column; connect a market table")
        price = torch.tensor(table["columns"]["price"], dtype=torch.float64)
        returns = torch.cat([torch.zeros(1, dtype=torch.float64), price.log().diff()])
        short, long = _rolling_std(returns, p.window), _rolling_std(returns, p.long_window)
        drawdown = 1 - price / price.cummax(0).values
        stress = torch.sigmoid(3 * (short / long.clamp_min(1e-9) - 1.4) + 25 * (drawdown - 0.08))
        scores = torch.stack([1 - stress, stress], 1).float()
        if p.output == "latest":
            return {"scores": {"scores": scores[-1:], "classes": list(MARKET_CLASSES), "ids": ["*"],
                               "as_of": table["ids"][-1], "labels": None}}
        truth = [0 if r == "calm" else 1 for r in table["columns"].get("regime", [])]
        return {"scores": {"scores": scores, "classes": list(MARKET_CLASSES), "ids": table["ids"],
                           "labels": torch.tensor(truth) if truth else None}}


def _rolling_std(x: Any, window: int) -> Any:
    """Trailing standard deviation (shorter windows at the start)."""
    import torch

    padded = torch.cat([x[:1].repeat(window - 1), x])
    return padded.unfold(0, window, 1).std(dim=1)


class AggregateParams(BaseModel):
    model_config = _CFG
    weights: list[float] = Field(default_factory=list, max_length=32,
                                 description="one weight per connected input, in order "
                                 "(empty: equal weights)")
    combine: Literal["weighted_mean", "max"] = Field("weighted_mean", description="how to combine")
    per_entity: Literal["max", "mean"] = Field(
        "max", description="several rows of one entity (e.g. transactions): take the max or mean")


def _entities(received: list[Mapping[str, int]]) -> int | None:
    """The risks an aggregation emits: one per entity of the input that has the most (the inputs
    share their entities; a market-wide score is one); None while any input's are unknown."""
    counts = [keys.get(ENTITY) for keys in received]
    return None if not counts or None in counts else max(n for n in counts if n is not None)


@agent("decision.risk_aggregate", category="decision", label="Risk aggregation", color=_DECISION,
       description="Combines several risk scores into one risk per entity (weighted mean or "
       "max). Rows of one entity are pooled; a market-wide score ('*') applies to all.",
       inputs=[PortSpec("scores", DataKind.SCORES, "risk scores (last class = risky)",
                        multiple=True)],
       outputs=[PortSpec("scores", DataKind.SCORES,
                         "one risk in 0..1 per entity, with each component in 'components'")],
       params=AggregateParams, resources=ResourceDemand(cpu=1, memory_mb=8),
       expected_duration_s=0.005, per_item_s=2e-6, columns_fn=lambda _p, received: _aggregate_columns(received),
       groups_fn=lambda _p, received: _entities(received))
class RiskAggregate(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from engine.agents.decision import aggregate_risk

        parts = [x for x in as_list(inputs.get("scores") or []) if x is not None]
        if not parts:
            raise ValueError("decision.risk_aggregate needs at least one scores input")
        weights = self.params.weights or [1.0] * len(parts)
        if len(weights) != len(parts):
            raise ValueError(f"weights has {len(weights)} values but {len(parts)} inputs are "
                             "connected; give one weight per input or leave it empty")
        scores = aggregate_risk(parts, weights, self.params.combine, self.params.per_entity)
        ctx.progress(len(scores["ids"]), len(scores["ids"]))
        return {"scores": scores}


def _aggregate_columns(received: list[tuple[str, ...] | None]) -> tuple[str, ...] | None:
    """The aggregate's scores table: its risk, then each input's pooled value, named by the
    input's risky (last) class (``decision.aggregate_risk``); None while an input's is unknown."""
    if not received or any(cols is None for cols in received):
        return None
    risky = [classes[-1] if (classes := score_classes(cols)) else None for cols in received]  # type: ignore[arg-type]
    return scores_columns(("risk",), truth=False, components=component_names(risky))


def _threshold_columns(received: list[tuple[str, ...] | None]) -> dict[str, tuple[str, ...] | None]:
    """The threshold's labels, and its flagged and passed tables: score, decision and the
    components of an aggregate's risk (``decision.split_by_threshold``)."""
    scores = received[0] if received else None
    table = None if scores is None else ("score", "decision", *components_in(scores))
    return {"labels": LABELS_COLUMNS, "flagged": table, "passed": table}


class ThresholdParams(BaseModel):
    model_config = _CFG
    threshold: float = Field(0.5, ge=0, le=1, description="flag when the score is at least this")
    score_class: str | None = Field(None, max_length=100, json_schema_extra=picks("class"),
                                    description="which class's score to test (empty: the last)")
    flag_label: str = Field("flag", min_length=1, max_length=50)
    pass_label: str = Field("pass", min_length=1, max_length=50)

    @field_validator("score_class", mode="before")
    @classmethod
    def _empty_is_the_last(cls, value: Any) -> Any:
        """An empty class (a file written by hand) means the last, as the description says."""
        return None if isinstance(value, str) and not value.strip() else value


@agent("decision.threshold", category="decision", label="Threshold / branch", color=_DECISION,
       description="Flags items whose score reaches a threshold; emits labels and splits the "
       "items into a 'flagged' and a 'passed' table.",
       inputs=[PortSpec("scores", DataKind.SCORES, "scores to test")],
       outputs=[PortSpec("labels", DataKind.LABELS, "flag / pass per item"),
                PortSpec("flagged", DataKind.TABLE, "items at or above the threshold"),
                PortSpec("passed", DataKind.TABLE, "items below the threshold")],
       params=ThresholdParams, resources=ResourceDemand(cpu=1, memory_mb=8),
       expected_duration_s=0.005, per_item_s=2e-7, columns_fn=lambda _p, received: _threshold_columns(received),
       needs_classes_fn=lambda p: (p.score_class,) if p.score_class else (),
       values_fn=lambda p, _received: {"labels": {"label": (p.flag_label, p.pass_label)},
                                       "flagged": {"decision": (p.flag_label,)},
                                       "passed": {"decision": (p.pass_label,)}})
class Threshold(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        from engine.agents.decision import split_by_threshold

        p = self.params
        return split_by_threshold(inputs["scores"], p.threshold, p.score_class,
                                  p.flag_label, p.pass_label)
