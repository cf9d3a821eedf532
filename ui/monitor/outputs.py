"""A node's outputs for people: image thumbnails, tables, text, score bars, or the stored summary.

``port_view`` turns one output value (payload conventions of engine/agents/runtime.py) into plain
data; ``render_outputs`` draws it. Live runs pass RunManager.outputs(); stored runs the summary.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import streamlit as st

from engine.agents.sinks import spreadsheet_safe
from engine.agents.tables import to_table
from engine.kinds import SCORE_PREFIX
from ui.render import code_md, escape_md

MAX_THUMBS = 8
MAX_ROWS = 50
MAX_DOWNLOAD_ROWS = 1_000_000
MAX_WRITTEN_BYTES = 100 * 2**20  # a sink's file offered for download, at most


def _is_array(v: Any) -> bool:
    return hasattr(v, "shape") and hasattr(v, "tolist")


def _to_list(v: Any) -> Any:
    if _is_array(v):
        if hasattr(v, "detach"):
            v = v.detach().cpu()
        return v.tolist()
    return v


def thumbnails(images: Any, limit: int = MAX_THUMBS) -> list[Any]:
    """The first ``limit`` images of an N×C×H×W (or N×H×W) float batch in 0..1 as uint8 H×W(×3) arrays."""
    import numpy as np

    if hasattr(images, "detach"):
        images = images.detach().cpu().float().numpy()
    arr = np.asarray(images, dtype=np.float32)
    if arr.ndim == 3:
        arr = arr[:, None]
    if arr.ndim != 4:
        return []
    out = []
    for img in arr[:limit]:
        lo, hi = float(img.min()), float(img.max())
        if lo < 0.0 or hi > 1.0:  # normalised images: stretch to 0..1 for display
            img = (img - lo) / (hi - lo) if hi > lo else img * 0
        img = (np.clip(img, 0, 1) * 255).astype(np.uint8)
        out.append(img[0] if img.shape[0] == 1 else np.moveaxis(img[:3], 0, -1))
    return out


def _score_rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """The first rows of scores as a person checks them: id, the text scored (where it came with
    the scores), the predicted class, the ground truth (where known), then a bar per class (at most
    12) and a risk aggregate's components."""
    head = {k: v[:MAX_ROWS] for k in _ROW_KEYS if (v := payload.get(k)) is not None and hasattr(v, "__getitem__")}
    head["classes"] = payload.get("classes") or []
    if isinstance(components := payload.get("components"), dict):
        head["components"] = {str(k): list(v)[:MAX_ROWS] for k, v in components.items()}
    columns, ids = to_table(head)
    classes = [str(c) for c in head["classes"]][:12]
    shown = {"text": "text", "predicted": "predicted", "label": "truth"}
    keep = [(c, name) for c, name in shown.items() if c in columns and (c != "predicted" or len(classes) > 1)]
    keep += [(f"{SCORE_PREFIX}{c}", c) for c in classes]
    keep += [(str(k), str(k)) for k in head.get("components", {})]
    rows = []
    for i in range(len(_to_list(head.get("scores", [])))):
        entry: dict[str, Any] = {"id": ids[i] if i < len(ids) else str(i)}
        for column, name in keep:
            value = columns[column][i] if i < len(columns.get(column, [])) else None
            entry.setdefault(name, str(value)[:300] if column == "text" else value)
        rows.append(entry)
    return rows


_ROW_KEYS = ("scores", "ids", "texts", "labels", "predicted")


def _table(columns: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """A table payload's columns as plain values, and its row count (the shortest list column;
    other values are the same on every row)."""
    cols = {str(k): _to_list(v) for k, v in columns.items()}
    return cols, min((len(v) for v in cols.values() if isinstance(v, list)), default=0)


def _table_rows(columns: dict[str, Any], ids: Any = None) -> list[dict[str, Any]]:
    """The first rows of a table, each led by its row id (a flagged customer is named, as in the
    CSV download) unless the table has an ``id`` column of its own."""
    cols, length = _table(columns)
    names = [str(i) for i in (ids or [])] if "id" not in cols else []
    return [_led_by_id(names, i, {k: (v[i] if isinstance(v, list) else v) for k, v in cols.items()})
            for i in range(min(length, MAX_ROWS))]


def _led_by_id(ids: list[str], i: int, row: dict[str, Any]) -> dict[str, Any]:
    """Row ``i`` with its id first, where the payload names one."""
    return {"id": ids[i], **row} if i < len(ids) else row


def port_view(value: Any) -> dict[str, Any]:
    """What to draw for one output value: ``{"kind": images|scores|labels|table|texts|text|number|json, ...}``."""
    if isinstance(value, dict):
        if "images" in value and _is_array(value["images"]):
            shape = list(value["images"].shape)
            return {"kind": "images", "images": thumbnails(value["images"]), "ids": list(value.get("ids") or []),
                    "shape": shape}
        if "scores" in value and "classes" in value:
            return {"kind": "scores", "rows": _score_rows(value), "classes": [str(c) for c in value["classes"]]}
        if "labels" in value and "confidence" in value:
            labels, conf = list(value["labels"]), _to_list(value["confidence"])
            ids = list(value.get("ids") or range(len(labels)))
            return {"kind": "labels", "rows": [{"id": str(i), "label": str(lab), "confidence": float(c)}
                                               for i, lab, c in list(zip(ids, labels, conf, strict=False))[:MAX_ROWS]]}
        if "columns" in value and isinstance(value["columns"], dict):
            return {"kind": "table", "rows": _table_rows(value["columns"], value.get("ids"))}
        if "texts" in value and isinstance(value["texts"], list):
            ids = [str(i) for i in value.get("ids") or []]
            return {"kind": "texts", "rows": [_led_by_id(ids, i, {"text": str(t)[:500]})
                                              for i, t in enumerate(value["texts"][:MAX_ROWS])]}
    if isinstance(value, str):
        return {"kind": "text", "text": value[:5000]}
    if isinstance(value, bool | int | float):
        return {"kind": "number", "value": value}
    if isinstance(value, list) and value and all(isinstance(r, dict) for r in value[:MAX_ROWS]):
        return {"kind": "table", "rows": [dict(r) for r in value[:MAX_ROWS]]}
    from engine.results import summarize_outputs

    return {"kind": "json", "data": summarize_outputs({"value": value}).get("value", {})}


def render_port(port: str, view: dict[str, Any], key: str) -> None:
    """Draw one port's view (see ``port_view``)."""
    st.markdown(f"**{escape_md(port)}**")
    kind = view["kind"]
    if kind == "images":
        images = view["images"]
        ids = [str(i) for i in view.get("ids", [])]
        captions = [ids[i] if i < len(ids) else str(i) for i in range(len(images))]
        st.caption(f"image batch {view['shape']} (first {len(images)})")
        if images:
            st.image(images, caption=captions, width=96, clamp=True)
    elif kind == "scores":
        config = {c: st.column_config.ProgressColumn(c, min_value=0.0, max_value=1.0, format="%.2f")
                  for c in view["classes"][:12]}
        st.dataframe(view["rows"], column_config=config, hide_index=True, key=f"{key}.scores")
    elif kind == "labels":
        config = {"confidence": st.column_config.ProgressColumn("confidence", min_value=0.0, max_value=1.0,
                                                                format="%.2f")}
        st.dataframe(view["rows"], column_config=config, hide_index=True, key=f"{key}.labels")
    elif kind in ("table", "texts"):
        st.dataframe(view["rows"], hide_index=True, key=f"{key}.table")
    elif kind == "text":
        st.text(view["text"])
    elif kind == "number":
        st.metric(port, view["value"])
    else:
        st.json(view["data"], expanded=False)


def port_csv(value: Any) -> str | None:
    """Every row of an output (scores, labels, a table or texts) as CSV, or None for other kinds.

    Text cells that a spreadsheet would read as a formula (``=``, ``+``, ``-``, ``@``...) get a
    leading ``'``: outputs hold user text, and a downloaded file is opened in Excel.
    """
    make = _csv_maker(value)
    return make() if make is not None else None


def _csv_maker(value: Any) -> Callable[[], str] | None:
    """What writes ``port_csv(value)``, or None for a kind it does not cover: the kind is told at
    once, the rows are built only when called (a download button calls it when clicked)."""
    if not isinstance(value, dict):
        return None
    if "scores" in value and "classes" in value:
        scores = value["scores"]
        if not (isinstance(scores, list) or (_is_array(scores) and len(scores.shape) > 0)):
            return None  # a single number, not one row per item
        kind = "scores"
    elif "labels" in value and "confidence" in value:
        kind = "labels"
    elif "columns" in value and isinstance(value["columns"], dict):
        kind = "table"
    elif "texts" in value and isinstance(value["texts"], list):
        kind = "texts"
    else:
        return None

    def make() -> str:
        ids = [str(i) for i in _to_list(value.get("ids")) or []]

        def row_id(i: int) -> Any:
            return ids[i] if i < len(ids) else i

        if kind == "scores":
            scores = _to_list(value["scores"])
            predicted = list(value.get("predicted") or [])
            header = ["id", *map(str, value["classes"]), *(["predicted"] if "predicted" in value else [])]
            rows = [[row_id(i), *(r if isinstance(r, list) else [r]), *([predicted[i]] if i < len(predicted) else [])]
                    for i, r in enumerate(scores)]
        elif kind == "labels":
            header = ["id", "label", "confidence"]
            rows = [[row_id(i), lab, c] for i, (lab, c) in
                    enumerate(zip(list(value["labels"]), _to_list(value["confidence"]), strict=False))]
        elif kind == "table":
            cols, length = _table(value["columns"])
            with_id = "id" not in cols and bool(ids)
            header = ["id"] * with_id + list(cols)
            rows = [[row_id(i)] * with_id + [v[i] if isinstance(v, list) else v for v in cols.values()]
                    for i in range(length)]
        else:
            header, rows = ["id", "text"], [[row_id(i), t] for i, t in enumerate(value["texts"])]
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow([_cell(h) for h in header])
        for row in rows[:MAX_DOWNLOAD_ROWS]:
            writer.writerow([_cell(c) for c in row])
        return buf.getvalue()

    return make


_cell = spreadsheet_safe  # the downloads and the CSV sink write the same cells


def written_files(value: Any) -> list[Path]:
    """The files a sink wrote (its ``written`` table's paths) that may be offered for download:
    inside the data folder's ``outputs`` and at most ``MAX_WRITTEN_BYTES``."""
    from engine.settings import data_dir

    if not isinstance(value, dict) or not isinstance(value.get("columns"), dict):
        return []
    root = (data_dir() / "outputs").resolve()
    files = []
    for raw in value["columns"].get("path") or []:
        path = Path(str(raw)).resolve()
        if path.is_relative_to(root) and path.is_file() and path.stat().st_size <= MAX_WRITTEN_BYTES:
            files.append(path)
    return files


def _downloads(port: str, value: Any, key: str, name: str) -> None:
    """Download buttons for one output: its rows as CSV, and the files a sink wrote."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{name}-{port}").strip("._-") or "output"
    # the contents are made when a button is clicked, not on every rerun of the node detail
    for k, path in enumerate(written_files(value)):
        mime = "text/csv" if path.suffix == ".csv" else "application/vnd.sqlite3"
        st.download_button(f"Download {path.name}", path.read_bytes, file_name=path.name, mime=mime,
                           key=f"{key}.file{k}", on_click="ignore", icon=":material/download:")
    make = _csv_maker(value)
    if make is not None:
        st.download_button("Download all rows (CSV)", make, file_name=f"{safe}.csv", mime="text/csv",
                           key=f"{key}.csv", on_click="ignore", icon=":material/download:",
                           help="every row of this output; the table's own download has only the rows shown")


def summary_lines(summary: dict[str, Any]) -> list[str]:
    """The stored per-port summary (engine.results.summarize_outputs) as short lines for people."""
    lines = []
    for port, d in summary.items():
        kind = d.get("type", "?")
        if "shape" in d:
            text = f"{kind} {d['shape']} {d.get('dtype', '')}".strip()
        elif "length" in d:
            text = f"{kind} of length {d['length']}"
        elif "size" in d:
            text = f"{kind} with {d['size']} keys: {', '.join(map(str, d.get('keys', [])))}"
        elif "value" in d:
            text = f"{kind} = {d['value']}"
        else:
            text = kind
        lines.append(f"{port}: {text}")
    return lines


def render_outputs(outputs: dict[str, Any] | None, summary: dict[str, Any], key: str, name: str = "") -> None:
    """A node's outputs: rendered from the live values when available (with downloads: every row
    as CSV, a sink's files), else from the stored summary. ``name`` starts the download's file name."""
    if outputs:
        for port, value in outputs.items():
            render_port(str(port), port_view(value), key=f"{key}.{port}")
            _downloads(str(port), value, f"{key}.{port}.dl", name or "output")
        return
    if not summary:
        st.caption("No outputs (the node has not finished, or it produces none).")
        return
    st.caption("Stored summary (full outputs live only in the running server's memory or the result cache).")
    for line in summary_lines(summary):
        st.markdown(f"- {code_md(line)}")
    with st.expander("Summary as JSON"):
        st.json(summary, expanded=False)
