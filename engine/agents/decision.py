"""Decision computations behind ``decision.risk_aggregate`` and ``decision.threshold``:
pool scores per entity, combine several risk sources with weights, split by a threshold.
"""

from __future__ import annotations

from typing import Any

import torch

from engine.agents.tables import component_names

BROADCAST = "*"


def risk_column(payload: dict[str, Any], score_class: str | None = None) -> torch.Tensor:
    """The column of the risky class (``score_class``, or the last class) as a 1-D tensor."""
    scores = torch.as_tensor(payload["scores"], dtype=torch.float32)
    scores = scores.view(-1, 1) if scores.dim() == 1 else scores
    classes = list(payload.get("classes") or [])
    if score_class is None:
        return scores[:, -1]
    if score_class not in classes:
        raise ValueError(f"score_class {score_class!r} is not one of the input's classes {classes}")
    return scores[:, classes.index(score_class)]


def pool_per_entity(payload: dict[str, Any], how: str) -> dict[str, float]:
    """Risk per entity: rows grouped by ``entities`` (else ``ids``), pooled by max or mean."""
    risk = risk_column(payload).tolist()
    keys = payload.get("entities") or payload["ids"]
    pooled: dict[str, list[float]] = {}
    for key, value in zip(keys, risk, strict=False):
        pooled.setdefault(str(key), []).append(value)
    if how == "max":
        return {k: max(v) for k, v in pooled.items()}
    return {k: sum(v) / len(v) for k, v in pooled.items()}


def _component_names(parts: list[dict[str, Any]]) -> list[str]:
    return component_names([str(p["classes"][-1]) if p.get("classes") else None for p in parts])


def aggregate_risk(
    parts: list[dict[str, Any]], weights: list[float], combine: str, per_entity: str
) -> dict[str, Any]:
    """One risk per entity from several scores payloads.

    An entity's risk is the weighted mean (or max) over the inputs that know it; an input
    whose only id is ``*`` applies to every entity. The scores payload also carries each
    input's pooled value per entity under ``components`` (named by the input's risky class).
    """
    pooled = [pool_per_entity(p, per_entity) for p in parts]
    entities: list[str] = []
    seen: set[str] = set()
    for mapping in pooled:
        for key in mapping:
            if key != BROADCAST and key not in seen:
                seen.add(key)
                entities.append(key)
    names = _component_names(parts)
    columns: dict[str, list[float | None]] = {name: [] for name in names}
    risk: list[float] = []
    for entity in entities:
        values, ws = [], []
        for name, mapping, w in zip(names, pooled, weights, strict=False):
            value = mapping.get(entity, mapping.get(BROADCAST))
            columns[name].append(value)
            if value is not None:
                values.append(value)
                ws.append(w)
        if combine == "max" or sum(ws) <= 0:
            risk.append(max(values))
        else:
            risk.append(sum(v * w for v, w in zip(values, ws, strict=False)) / sum(ws))
    tensor = torch.tensor(risk, dtype=torch.float32).view(-1, 1)
    return {"scores": tensor, "classes": ["risk"], "ids": entities, "labels": None,
            "components": columns}


def split_by_threshold(
    payload: dict[str, Any], threshold: float, score_class: str | None,
    flag_label: str, pass_label: str,
) -> dict[str, Any]:
    """Labels (flag/pass with the score as confidence) and the flagged / passed tables."""
    risk = risk_column(payload, score_class).tolist()
    ids = list(payload["ids"])
    flags = [r >= threshold for r in risk]
    labels = [flag_label if f else pass_label for f in flags]

    def table(keep: bool) -> dict[str, Any]:
        rows = [i for i, f in enumerate(flags) if f == keep]
        extra = payload.get("components") or {}
        return {"columns": {"score": [risk[i] for i in rows],
                            "decision": [labels[i] for i in rows],
                            **{k: [v[i] for i in rows] for k, v in extra.items()}},
                "ids": [ids[i] for i in rows]}

    return {"labels": {"labels": labels, "ids": ids, "confidence": risk},
            "flagged": table(True), "passed": table(False)}
