"""Flow utilities: merge (join by id or column), branch (by a declared condition, never code),
limit (first or random n items), dialogue routing for customer service, and sinks that write a
CSV file or a SQLite table inside the data folder.
"""

from __future__ import annotations

import random
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.agents import tables
from engine.agents.routing import PRIORITIES, TICKET_COLUMNS, RouteParams, route_tickets
from engine.agents.sinks import write_csv, write_sqlite
from engine.kinds import DataKind
from engine.registry import agent
from engine.resources import ResourceDemand
from engine.spec import Agent, PortSpec, RunContext, picks

_CFG = ConfigDict(extra="forbid", allow_inf_nan=False)
_COLOR = "#64748b"
_LIGHT = ResourceDemand(cpu=0.5, memory_mb=16)


def _same_columns(_: Any, received: list[tuple[str, ...] | None]) -> tuple[str, ...] | None:
    """``columns_fn`` of the agents that pass their single input's rows on (limit, branch)."""
    return received[0] if len(received) == 1 else None


# what flow.merge, flow.branch and the sinks can read as a table (engine.agents.tables.to_table)
TABLE_LIKE = (DataKind.TABLE, DataKind.SCORES, DataKind.LABELS, DataKind.TEXT_BATCH, DataKind.EMBEDDING,
              DataKind.TENSOR)


class MergeParams(BaseModel):
    model_config = _CFG
    on: str = Field("id", min_length=1, max_length=200, json_schema_extra=picks("column"),
                    description="join key: 'id' (the items' ids) or a column present in every input")
    how: Literal["inner", "left", "outer"] = Field(
        "inner", description="inner: rows found in all inputs; left: every row of the first "
        "input; outer: every row of any input")


@agent("flow.merge", category="flow", label="Merge", color=_COLOR,
       description="Joins tables, scores, labels or texts by id (or by a column) into one table; "
       "inputs are joined in the order their edges were drawn.",
       inputs=[PortSpec("in", DataKind.ANY, "two or more tables / score sets", multiple=True,
                        accepts=TABLE_LIKE)],
       outputs=[PortSpec("table", DataKind.TABLE, "the joined table")],
       params=MergeParams, resources=_LIGHT, expected_duration_s=0.005, per_item_s=4e-5,
       memory_per_item_mb=3e-3, needs_columns_fn=lambda p: () if p.on == "id" else (p.on,),
       columns_fn=lambda p, received: tables.joined_columns(received, p.on))
class Merge(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        p: MergeParams = self.params  # type: ignore[assignment]
        values = inputs.get("in")
        values = values if isinstance(values, list) and not _is_rows(values) else [values]
        if not values:
            raise ValueError("flow.merge received no inputs; connect at least one")
        cols, ids = tables.join([tables.to_table(v) for v in values], p.on, p.how)
        ctx.progress(len(ids), len(ids))
        return {"table": {"columns": cols, "ids": ids}}


def _is_rows(value: list[Any]) -> bool:
    return bool(value) and all(isinstance(v, dict) and "columns" not in v and "ids" not in v
                               for v in value)


class BranchParams(BaseModel):
    model_config = _CFG
    field: str = Field("confidence", min_length=1, max_length=200, json_schema_extra=picks("column"),
                       description="the column (or 'id') to test")
    op: Literal["==", "!=", "<", "<=", ">", ">=", "contains", "in"] = Field(
        ">=", description="comparison; 'in' takes a list or comma-separated values")
    value: str | float | list[str] = Field(0.5, json_schema_extra=picks("value"),
                                           description="the value to compare with")


@agent("flow.branch", category="flow", label="Branch", color=_COLOR,
       description="Splits rows by a condition on a column (field, operator, value): rows that "
       "match go to 'match', the others to 'rest'. No code is executed.",
       inputs=[PortSpec("in", DataKind.ANY, "a table, scores or labels", accepts=TABLE_LIKE)],
       outputs=[PortSpec("match", DataKind.TABLE, "rows meeting the condition"),
                PortSpec("rest", DataKind.TABLE, "the other rows")],
       params=BranchParams, resources=_LIGHT, expected_duration_s=0.005, per_item_s=2e-5,
       memory_per_item_mb=2e-3, needs_columns_fn=lambda p: () if p.field == "id" else (p.field,),
       columns_fn=_same_columns,
       match_check_fn=lambda p, columns, values: tables.never_matches(p.field, p.op, p.value, columns, values),
       values_fn=lambda _p, received: {"match": received[0], "rest": received[0]} if len(received) == 1 else None)
class Branch(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        p: BranchParams = self.params  # type: ignore[assignment]
        cols, ids = tables.to_table(inputs["in"])
        hit = tables.select_rows(cols, ids, p.field, p.op, p.value)
        ctx.progress(len(ids), len(ids))
        ctx.log(f"{sum(hit)} of {len(ids)} rows match {p.field} {p.op} {p.value!r}")
        return {"match": tables.take(cols, ids, [i for i, h in enumerate(hit) if h]),
                "rest": tables.take(cols, ids, [i for i, h in enumerate(hit) if not h])}


class LimitParams(BaseModel):
    model_config = _CFG
    n: int = Field(10, ge=0, le=10**9, description="how many items to keep")
    mode: Literal["first", "random"] = Field("first", description="the first n or a random sample")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="sampling seed (mode random)")


@agent("flow.limit", category="flow", label="Limit / sample", color=_COLOR,
       description="Keeps the first n items, or a random sample of n (seeded), of any per-item "
       "payload (texts, images, tables, scores).",
       inputs=[PortSpec("in", DataKind.ANY, "items")],
       outputs=[PortSpec("out", DataKind.ANY, "the same kind of payload, at most n items")],
       params=LimitParams, resources=_LIGHT, expected_duration_s=0.01,
       items_fn=lambda p, n: p.n if n is None else min(p.n, n),
       columns_fn=_same_columns,
       values_fn=lambda _p, received: {"out": received[0]} if len(received) == 1 else None)
class Limit(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        p: LimitParams = self.params  # type: ignore[assignment]
        total = tables.item_count(inputs["in"])
        keep = min(p.n, total)
        rows = (sorted(random.Random(p.seed).sample(range(total), keep)) if p.mode == "random"
                else list(range(keep)))
        ctx.progress(keep, keep)
        return {"out": tables.slice_payload(inputs["in"], rows)}


def _ticket_values(p: RouteParams, received: list[Any]) -> dict[str, dict[str, tuple[str, ...]]]:
    """The names a routed ticket's columns hold: its priority, its queue (the rules', the
    fallback and triage queues), and its intent (the classes of the intent scores)."""
    known = {"priority": PRIORITIES,
             "queue": tuple(dict.fromkeys([*(r.queue for r in p.rules), p.fallback_queue, p.triage_queue]))}
    intents = next((r["predicted"] for r in received if r and "predicted" in r), None)
    return {"tickets": known | ({"intent": intents} if intents else {})}


@agent("flow.route", category="flow", label="Dialogue routing", color=_COLOR,
       description="Routes customer-service requests to a queue and a priority from their intent "
       "and entities, by the rules in the parameters (intent → queue, escalations).",
       inputs=[PortSpec("intents", DataKind.SCORES, "intent scores per request (text.intent)"),
               PortSpec("entities", DataKind.TABLE, "entities per request (text.entities)",
                        required=False)],
       outputs=[PortSpec("tickets", DataKind.TABLE,
                         "request, intent, queue, priority, reason and the entities found")],
       params=RouteParams, resources=_LIGHT, expected_duration_s=0.005, per_item_s=3e-5,
       columns_fn=lambda _p, _received: TICKET_COLUMNS, values_fn=lambda p, received: _ticket_values(p, received))
class Route(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        tickets = route_tickets(inputs["intents"], inputs.get("entities"), self.params)  # type: ignore[arg-type]
        ctx.progress(len(tickets["ids"]), len(tickets["ids"]))
        return {"tickets": tickets}


class CsvSinkParams(BaseModel):
    model_config = _CFG
    filename: str = Field("results.csv", min_length=1, max_length=200,
                          description="file name under <data folder>/outputs/ (sub-folders "
                          "allowed; unsafe characters are replaced)")


WRITTEN_COLUMNS = ("path", "rows")  # a sink's `written` table
_WRITTEN = PortSpec("written", DataKind.TABLE, "where the rows went: path and row count")


@agent("flow.sink_csv", category="flow", label="Write CSV", color=_COLOR, cacheable=False,
       description="Writes a table (or scores, labels, texts) to a CSV file in the data "
       "folder's outputs/ directory.",
       inputs=[PortSpec("in", DataKind.ANY, "what to write", accepts=TABLE_LIKE)], outputs=[_WRITTEN],
       columns_fn=lambda _p, _received: WRITTEN_COLUMNS, items_fn=lambda _p, _n: 1,  # one row: path, rows
       params=CsvSinkParams, resources=_LIGHT, expected_duration_s=0.01, per_item_s=5e-5)
class CsvSink(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        cols, ids = tables.to_table(inputs["in"])
        path = write_csv(self.params.filename, cols, ids)  # type: ignore[attr-defined]
        ctx.log(f"wrote {len(ids)} rows to {path}")
        ctx.progress(len(ids), len(ids))
        return {"written": {"columns": {"path": [str(path)], "rows": [len(ids)]}, "ids": ["csv"]}}


class SqliteSinkParams(BaseModel):
    model_config = _CFG
    database: str = Field("results.sqlite", min_length=1, max_length=200,
                          description="SQLite file under <data folder>/outputs/")
    table: str = Field("results", min_length=1, max_length=64,
                       description="table name (letters, digits, underscores)")
    mode: Literal["replace", "append"] = Field("replace", description="replace the table or add rows")


@agent("flow.sink_sqlite", category="flow", label="Write SQLite", color=_COLOR, cacheable=False,
       description="Writes rows to a table of a SQLite database in the data folder's outputs/ "
       "directory (created when missing).",
       inputs=[PortSpec("in", DataKind.ANY, "what to write", accepts=TABLE_LIKE)], outputs=[_WRITTEN],
       columns_fn=lambda _p, _received: WRITTEN_COLUMNS, items_fn=lambda _p, _n: 1,  # one row: path, rows
       params=SqliteSinkParams, resources=_LIGHT, expected_duration_s=0.03, per_item_s=3e-5)
class SqliteSink(Agent):
    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        p: SqliteSinkParams = self.params  # type: ignore[assignment]
        cols, ids = tables.to_table(inputs["in"])
        path = write_sqlite(p.database, p.table, cols, ids, replace=p.mode == "replace")
        ctx.log(f"wrote {len(ids)} rows to table {p.table!r} of {path}")
        ctx.progress(len(ids), len(ids))
        return {"written": {"columns": {"path": [str(path)], "rows": [len(ids)]}, "ids": ["sqlite"]}}
