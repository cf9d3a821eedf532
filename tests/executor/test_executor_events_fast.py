"""The executor builds its hot events without the dataclass __init__: they must equal the real ones."""

from __future__ import annotations

import dataclasses

from engine.events import NodeFinished, NodeQueued, NodeStarted, event_from_dict
from engine.executor import _event

FIELDS = {
    NodeQueued: {"run_id": "r", "node_id": "n", "time": 1.5},
    NodeStarted: {"run_id": "r", "node_id": "n", "time": 2.0, "device": "cpu", "attempt": 1, "threads": 2,
                  "demand": {"cpu": 2.0}, "worker": "sg-worker-0"},
    NodeFinished: {"run_id": "r", "node_id": "n", "time": 3.0, "metrics": {"wall_s": 0.1}, "cached": False,
                   "output_summary": {"out": {"type": "NoneType", "value": None}}},
}


def test_fast_events_equal_the_constructed_ones() -> None:
    for cls, fields in FIELDS.items():
        assert set(fields) == {f.name for f in dataclasses.fields(cls)}, f"{cls.__name__} gained a field"
        fast, slow = _event(cls, fields), cls(**fields)
        assert type(fast) is cls
        assert fast == slow
        assert fast.to_dict() == slow.to_dict()
        assert event_from_dict(fast.to_dict()) == slow
