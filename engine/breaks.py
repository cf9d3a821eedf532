"""Conditional breakpoints: whether a run pauses before a node, from what arrived at its inputs.

A breakpoint with a condition (``NodeSpec.break_when``) pauses the run only when some item of
the tested input meets ``field op value``: "pause before routing when a ticket's intent
confidence is below 0.6". The test reads the input as a table (``engine.agents.tables``: a
table's columns, a classifier's ``predicted``/``confidence``/``score_<class>``, labels), the way
``flow.branch`` does; nothing in it is code. When the condition cannot be tested (the column is
not there, the input did not arrive) the run pauses anyway and says why: a breakpoint that is
skipped because of a typo would defeat its purpose.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from engine.agents import tables
from engine.agents.tables import Columns
from engine.workflow import BREAK_OPS, BreakCondition

__all__ = ["Verdict", "check", "matching", "parse"]

_SYMBOLS = "|".join(re.escape(op) for op in sorted(BREAK_OPS, key=len, reverse=True) if not op.isalpha())
_WORDS = "|".join(op for op in BREAK_OPS if op.isalpha())  # need spaces around them: "tags in a,b"
_TEXT = re.compile(rf"^\s*(?:(?P<port>[A-Za-z_][\w-]*)\s*:\s*)?"
                   rf"(?:(?P<quote>[\"'`])(?P<quoted>.+?)(?P=quote)|(?P<field>\S+?))"  # a column with spaces: quoted
                   rf"(?:\s*(?P<sym>{_SYMBOLS})\s*|\s+(?P<word>{_WORDS})\s+)(?P<value>.*?)\s*$")
_FORM = ("[PORT:] FIELD OP VALUE, e.g. 'confidence < 0.6' or 'intent: predicted == refund' (a column whose name "
         "has spaces in quotes: \"'unit price' > 5\")")


@dataclass(frozen=True)
class Verdict:
    """Whether to pause, and why, in words ("intent: confidence < 0.6 holds for 3 of 20 rows")."""

    pause: bool
    why: str


def parse(text: str) -> BreakCondition:
    """A condition written as text: ``[PORT:] FIELD OP VALUE`` (OP one of ==, !=, <, <=, >, >=,
    contains, in; VALUE a number or text, a comma-separated list for ``in``; quotes optional; a
    FIELD with spaces in quotes or backticks: ``'unit price' > 5``).

    Raises:
        ValueError: the text is not of that form (the message shows the form).
    """
    match = _TEXT.match(text or "")
    if match is None or not match["value"]:
        raise ValueError(f"cannot read the condition {text!r}; write it as {_FORM} (operators: "
                         f"{', '.join(BREAK_OPS)})")
    op, raw = match["sym"] or match["word"], match["value"]
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        value: Any = raw[1:-1]
    elif op == "in":
        value = tables.listed_values(raw)
    else:
        try:
            value = float(raw)
        except ValueError:
            value = raw
    try:
        return BreakCondition(port=match["port"], field=match["quoted"] or match["field"], op=op, value=value)
    except ValidationError as exc:
        raise ValueError(f"cannot use the condition {text!r}: {exc.errors()[0]['msg']}; write it as {_FORM}") from None


class _Untestable(Exception):
    """Why a condition cannot be tested on these inputs (the message)."""


def _tested(condition: BreakCondition, inputs: Mapping[str, Any]) -> tuple[str, list[tuple[Columns, list[str], list[bool]]]]:
    """The port the condition tests, and for each payload there (a port that takes several edges
    holds a list of them): its columns, its ids, and which of its rows meet the condition.

    Raises:
        _Untestable: no input to test, or one that cannot be read as a table with that column.
    """
    port = condition.tested_port(list(inputs))
    if port is None:
        raise _Untestable(f"the node has {len(inputs)} inputs ({', '.join(inputs) or 'none'}); "
                          "name one (PORT: FIELD OP VALUE)")
    if port not in inputs:
        raise _Untestable(f"nothing arrived at input {port!r}")
    value = inputs[port]
    tested = []
    for payload in value if isinstance(value, list) and value and all(_payload(v) for v in value) else [value]:
        try:
            cols, ids = tables.to_table(payload)
            if condition.field != "id" and condition.field not in cols:
                raise _Untestable(f"input {port!r} has no column {condition.field!r} (it has {', '.join(['id', *cols])})")
            tested.append((cols, ids, tables.select_rows(cols, ids, condition.field, condition.op, condition.value)))
        except (TypeError, ValueError) as exc:
            raise _Untestable(str(exc)) from None
    return port, tested


def check(condition: BreakCondition, inputs: Mapping[str, Any]) -> Verdict:
    """Whether ``condition`` holds for the ``inputs`` a node is about to start with (by port). A
    condition that cannot be tested pauses, with the reason."""
    said = condition.describe()
    try:
        _, tested = _tested(condition, inputs)
    except _Untestable as exc:
        return Verdict(True, f"cannot test {said}: {exc}")
    hits, rows = sum(sum(hit) for _, _, hit in tested), sum(len(ids) for _, ids, _ in tested)
    if hits:
        return Verdict(True, f"{said} holds for {hits} of {rows} row{'s' if rows != 1 else ''}")
    return Verdict(False, f"{said} holds for none of {rows} row{'s' if rows != 1 else ''}: not paused")


def matching(condition: BreakCondition, inputs: Mapping[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The rows of the tested input that meet ``condition``, as a table payload (``id`` kept),
    with the port's name: what a paused breakpoint caught. None when it cannot be tested."""
    try:
        port, tested = _tested(condition, inputs)
    except _Untestable:
        return None
    names = list(dict.fromkeys(c for cols, _, _ in tested for c in cols))
    rows = [(ids[i], {c: v[i] for c, v in cols.items()}) for cols, ids, hit in tested for i, h in enumerate(hit) if h]
    return port, {"columns": {c: [r.get(c) for _, r in rows] for c in names}, "ids": [i for i, _ in rows]}


def _payload(value: Any) -> bool:
    """A whole payload (a table, scores...), not one row of a list of rows."""
    return isinstance(value, dict) and ("columns" in value or "scores" in value or "labels" in value
                                        or "texts" in value or "vectors" in value or "tensor" in value)
