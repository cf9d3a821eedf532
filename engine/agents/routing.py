"""Dialogue routing rules for customer service: intent → queue and priority, with escalations on
large amounts, urgent wording and low confidence. Rules are data (parameters), never code.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.agents.tables import to_table

Priority = Literal["low", "normal", "high", "urgent"]
PRIORITIES: tuple[str, ...] = ("low", "normal", "high", "urgent")
_CFG = ConfigDict(extra="forbid", allow_inf_nan=False)


class RouteRule(BaseModel):
    model_config = _CFG
    intent: str = Field(..., min_length=1, max_length=100, description="intent this rule handles")
    queue: str = Field(..., min_length=1, max_length=100, description="team or queue to send it to")
    priority: Priority = Field("normal", description="base priority")


_DEFAULT_RULES = [
    RouteRule(intent="billing", queue="billing-team", priority="normal"),
    RouteRule(intent="refund", queue="billing-team", priority="high"),
    RouteRule(intent="technical", queue="tech-support", priority="normal"),
    RouteRule(intent="cancel", queue="retention", priority="high"),
    RouteRule(intent="shipping", queue="logistics", priority="normal"),
    RouteRule(intent="account", queue="account-security", priority="normal"),
]


class RouteParams(BaseModel):
    model_config = _CFG
    rules: list[RouteRule] = Field(default_factory=lambda: list(_DEFAULT_RULES), max_length=200,
                                   description="intent → queue and base priority")
    fallback_queue: str = Field("general", min_length=1, max_length=100,
                                description="queue for intents without a rule")
    min_confidence: float = Field(0.5, ge=0, le=1, description="below this intent confidence a "
                                  "request goes to the triage queue for a person to read")
    triage_queue: str = Field("triage", min_length=1, max_length=100)
    escalate_amount: float = Field(500.0, ge=0, le=1e12, description="raise the priority one step "
                                   "when a mentioned amount is at least this (0: never)")
    urgent_words: list[str] = Field(default_factory=lambda: ["urgent", "asap", "immediately"],
                                    max_length=100, description="words that raise the priority one step")


def _amount(value: str) -> float | None:
    digits = "".join(c for c in value if c.isdigit() or c == ".")
    try:
        return float(digits) if digits else None
    except ValueError:
        return None


def _entities_by_text(entities: Any) -> dict[str, dict[str, list[str]]]:
    found: dict[str, dict[str, list[str]]] = {}
    if entities is None:
        return found
    cols, _ = to_table(entities)
    for text_id, kind, value in zip(cols.get("text_id", []), cols.get("type", []),
                                    cols.get("value", []), strict=True):
        found.setdefault(str(text_id), {}).setdefault(str(kind), []).append(str(value))
    return found


TICKET_COLUMNS = ("text", "intent", "confidence", "queue", "priority", "reason", "order", "amount", "date",
                  "email", "product")  # a routed ticket's columns (validation checks readers against them)


def route_tickets(intents: dict[str, Any], entities: Any, params: RouteParams) -> dict[str, Any]:
    """One ticket per request: queue, priority and the reason, plus the entities found."""
    cols, ids = to_table(intents)
    rules = {r.intent: r for r in params.rules}
    ents = _entities_by_text(entities)
    out: dict[str, list[Any]] = {k: [] for k in TICKET_COLUMNS}
    for row, text_id in enumerate(ids):
        intent, conf = str(cols["predicted"][row]), float(cols["confidence"][row])
        text = str(cols.get("text", [""] * len(ids))[row])
        found = ents.get(text_id, {})
        rule = rules.get(intent)
        queue, level, reasons = (rule.queue, PRIORITIES.index(rule.priority), [f"intent {intent}"]
                                 ) if rule else (params.fallback_queue, 1, [f"no rule for {intent}"])
        if conf < params.min_confidence:
            queue = params.triage_queue
            reasons.append(f"low confidence {conf:.2f}")
        amounts = [a for a in map(_amount, found.get("AMOUNT", [])) if a is not None]
        if params.escalate_amount and amounts and max(amounts) >= params.escalate_amount:
            level += 1
            reasons.append(f"amount {max(amounts):g} ≥ {params.escalate_amount:g}")
        if any(w.lower() in text.lower() for w in params.urgent_words):
            level += 1
            reasons.append("urgent wording")
        values = (text, intent, round(conf, 4), queue, PRIORITIES[min(level, 3)], "; ".join(reasons),
                  *(", ".join(found.get(k, [])) for k in ("ORDER", "AMOUNT", "DATE", "EMAIL", "PRODUCT")))
        for key, value in zip(out, values, strict=True):
            out[key].append(value)
    return {"columns": out, "ids": ids}
