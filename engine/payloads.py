"""Item-wise payloads: cut a port's payload to a batch of items, and join batches back.

What itemwise agents and fused chains (``engine.fusion``) rely on. Each data kind names the
fields that hold one entry per item (``ITEM_FIELDS``); every other field (class names, ...) is
the same for every batch and kept as is. Payload conventions: ``engine/agents/runtime.py``.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from engine.kinds import DataKind
from engine.spec import AgentSpec

ITEM_FIELDS: dict[DataKind, frozenset[str]] = {
    DataKind.IMAGE_BATCH: frozenset({"images", "ids", "labels", "lesion_centers", "lesion_radii", "maps",
                                     "regions"}),
    DataKind.TEXT_BATCH: frozenset({"texts", "ids", "labels"}),
    DataKind.EMBEDDING: frozenset({"vectors", "ids", "labels"}),
    DataKind.SCORES: frozenset({"scores", "ids", "labels"}),
    DataKind.LABELS: frozenset({"labels", "ids", "confidence"}),
}


class PayloadShapeError(ValueError):
    """A payload does not have one entry per item where its kind says it should."""


def count_items(payload: Any, kind: DataKind) -> int:
    """How many items ``payload`` (of ``kind``) holds: the length of its ``ids``, else of its
    first per-item field."""
    if kind in ITEM_FIELDS and isinstance(payload, dict):
        for key in ("ids", *sorted(ITEM_FIELDS[kind])):
            value = payload.get(key)
            if value is not None and hasattr(value, "__len__"):
                return len(value)
    raise PayloadShapeError(f"cannot count the items of this {kind} payload: it needs an 'ids' list "
                            f"(or one of {sorted(ITEM_FIELDS.get(kind, ()))}); see engine/agents/runtime.py")


def rows_of(payload: Any, kind: DataKind) -> int | None:
    """How many items an output of any kind holds, or None when it has none to count: a per-item
    kind by ``count_items``; a table, or a payload passed on by an ``any`` port, by its ``ids`` (or
    its first column)."""
    try:
        return count_items(payload, kind)
    except PayloadShapeError:
        pass
    if not isinstance(payload, dict):
        return None
    ids = payload.get("ids")
    if ids is not None and hasattr(ids, "__len__") and not isinstance(ids, str | bytes):
        return len(ids)
    columns = payload.get("columns")
    if isinstance(columns, dict) and columns:
        first = next(iter(columns.values()))
        return len(first) if hasattr(first, "__len__") and not isinstance(first, str | bytes) else None
    return None


def cut(payload: dict[str, Any], kind: DataKind, part: slice) -> dict[str, Any]:
    """The items ``part`` of ``payload``: per-item fields sliced, the rest shared."""
    fields = ITEM_FIELDS[kind]
    return {k: (v[part] if k in fields and v is not None else v) for k, v in payload.items()}


def join(parts: Sequence[dict[str, Any]], kind: DataKind, filled: dict[str, Any] | None = None) -> dict[str, Any]:
    """Batches of one payload joined in order (tensors concatenated on dim 0, lists extended);
    the inverse of ``cut`` over consecutive slices. ``filled``: fields already joined (``Joiner``)."""
    if not parts:
        raise PayloadShapeError(f"no batches of the {kind} payload to join")
    fields = ITEM_FIELDS.get(kind, frozenset())
    out = dict(parts[0])
    for key in fields & out.keys():
        if filled and key in filled:
            out[key] = filled[key]
            continue
        values = [p.get(key) for p in parts]
        if all(v is None for v in values):
            continue
        if any(v is None for v in values):
            raise PayloadShapeError(f"field {key!r} of a {kind} payload is missing in some batches")
        out[key] = _concat(values, key)
    return out


def _concat(values: list[Any], key: str) -> Any:
    first = values[0]
    if isinstance(first, list):
        return [item for v in values for item in v]
    if hasattr(first, "shape") and type(first).__module__.startswith("torch"):
        import torch

        return torch.cat(values)
    if hasattr(first, "shape"):  # numpy
        import numpy as np

        return np.concatenate(values)
    raise PayloadShapeError(f"field {key!r} holds {type(first).__name__}, which cannot be joined by item")


def without_items(spec: AgentSpec, outputs: dict[str, Any]) -> dict[str, Any]:
    """An itemwise agent's outputs (one batch's) with only the fields every batch shares (class
    names, ...): what the next node of a fused chain gets in ``finish`` when these outputs were
    never joined (``engine.fusion``)."""
    out: dict[str, Any] = {}
    for port in spec.outputs:
        value = outputs.get(port.name)
        if isinstance(value, dict) and port.kind in ITEM_FIELDS:
            value = {k: v for k, v in value.items() if k not in ITEM_FIELDS[port.kind]}
        out[port.name] = value
    return out


def cut_inputs(spec: AgentSpec, inputs: dict[str, Any], part: slice) -> dict[str, Any]:
    """``inputs`` of an itemwise agent cut to the items ``part`` (every port by its kind)."""
    return {p.name: cut(inputs[p.name], p.kind, part) for p in spec.inputs if p.name in inputs}


def item_count(spec: AgentSpec, inputs: dict[str, Any]) -> int:
    """Items in an itemwise agent's inputs (its first input port)."""
    port = spec.inputs[0]
    if port.name not in inputs:
        raise PayloadShapeError(f"agent {spec.name!r} got no input on port {port.name!r}")
    return count_items(inputs[port.name], port.kind)


class Joiner:
    """Joins an itemwise agent's per-batch outputs as they arrive, in any order, from any thread.

    Per-item tensors are copied into one tensor per field allocated at the first batch, while
    each batch is still in the CPU cache and on the thread that made it (``torch.cat`` of all
    batches at the end was a serial copy of the whole output: 3-7 ms for 512 images 3x64x64).
    ``result()`` gives the outputs joined in batch order, one per port.
    """

    def __init__(self, spec: AgentSpec, n_items: int, n_batches: int) -> None:
        self.spec, self.n = spec, n_items
        self._parts: list[dict[str, Any] | None] = [None] * n_batches
        self._buffers: dict[tuple[str, str], Any] = {}
        self._lock = threading.Lock()

    def add(self, index: int, part: slice, outputs: dict[str, Any]) -> None:
        size = part.stop - part.start
        slim: dict[str, Any] = {}
        for port in self.spec.outputs:
            payload = outputs.get(port.name)
            if not isinstance(payload, dict) or port.kind not in ITEM_FIELDS:
                slim[port.name] = payload
                continue
            kept = dict(payload)
            for key in ITEM_FIELDS[port.kind] & payload.keys():
                value = payload[key]
                if type(value).__module__.startswith("torch") and getattr(value, "ndim", 0) and value.shape[0] == size:
                    buffer = self._buffer(port.name, key, value)
                    if buffer.shape[1:] != value.shape[1:] or buffer.dtype != value.dtype:
                        raise PayloadShapeError(
                            f"batch {index} of output {port.name!r} field {key!r} has shape {tuple(value.shape)}, "
                            f"unlike the other batches ({tuple(buffer.shape[1:])} per item): cannot join")
                    target = buffer[part]
                    if value.data_ptr() != target.data_ptr() or value.stride() != target.stride():
                        target.copy_(value)  # else the agent wrote it in place (``slot``)
                    kept[key] = None
            slim[port.name] = kept
        self._parts[index] = slim

    def slot(self, port: str, key: str, part: slice, like: Any) -> Any | None:
        """The joined tensor's rows ``part`` for field ``key`` of output ``port``, for the agent to
        write into (``RunContext.output_slot``); None when ``like`` does not fit or is on a GPU."""
        if getattr(like, "device", None) is None or like.device.type != "cpu" or like.shape[0] != part.stop - part.start:
            return None
        buffer = self._buffer(port, key, like)
        if buffer.shape[1:] != like.shape[1:] or buffer.dtype != like.dtype:
            return None
        return buffer[part]

    def _buffer(self, port: str, key: str, like: Any) -> Any:
        buffer = self._buffers.get((port, key))
        if buffer is None:
            with self._lock:
                buffer = self._buffers.get((port, key))
                if buffer is None:
                    import torch

                    buffer = self._buffers[(port, key)] = torch.empty(
                        (self.n, *like.shape[1:]), dtype=like.dtype, device=like.device)
        return buffer

    def result(self) -> dict[str, Any]:
        parts = [p for p in self._parts if p is not None]
        if len(parts) != len(self._parts):
            raise PayloadShapeError("some batches are missing: cannot join the outputs")
        out = {}
        for port in self.spec.outputs:
            if not parts or port.name not in parts[0]:
                continue
            filled = {key: buf for (name, key), buf in self._buffers.items() if name == port.name}
            values = [p[port.name] for p in parts]
            out[port.name] = join(values, port.kind, filled) if port.kind in ITEM_FIELDS and isinstance(
                values[0], dict) else values[0]
        return out


def payload_bytes(value: Any, _depth: int = 0) -> int:
    """About how many bytes ``value`` holds: tensors and arrays by their element bytes, strings
    by length, containers by their contents (8 bytes per other object). For memory budgets, not
    accounting: shared storage counts once per reference."""
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):  # numpy arrays, torch tensors
        return nbytes
    if isinstance(value, (str, bytes)):
        return len(value)
    if _depth > 8:
        return 8
    if isinstance(value, dict):
        return sum(payload_bytes(v, _depth + 1) for v in value.values()) + 8 * len(value)
    if isinstance(value, (list, tuple)):
        if len(value) > 64 and all(isinstance(v, (int, float, bool)) for v in value[:64]):
            return 8 * len(value)
        return sum(payload_bytes(v, _depth + 1) for v in value) + 8 * len(value)
    return 8
