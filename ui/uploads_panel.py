"""The properties panel's "Your files" section: upload images, a text file or a model for the
agents that read files, and pick among the files uploaded before. Files are checked and kept by
``engine.uploads``; the node's parameter (``paths`` / ``path``) gets their data-folder path.

Shown for ``vision.source`` with dataset ``uploads``, ``text.source`` with mode ``file``,
``tabular.csv`` and ``custom.model``. The browser's upload limit is the server's ``maxUploadSize``
(``.streamlit/config.toml``); each kind has its own limit below that in ``engine.uploads``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import streamlit as st

from engine import uploads
from engine.workflow import NodeSpec
from ui.auth import current_user
from ui.forms import sync_widget
from ui.render import code_md, escape_md

_NONE = ""
PREVIEW_ROWS = 5  # rows of a CSV table shown as they will be read


@dataclass(frozen=True)
class FileParam:
    kind: str  # engine.uploads kind
    param: str  # the node parameter that names the file(s)
    multiple: bool
    label: str
    applies: Callable[[Mapping[str, Any]], bool]
    otherwise: str = ""  # a hint shown when ``applies`` is false


FILE_PARAMS: dict[str, FileParam] = {
    "vision.source": FileParam("images", "paths", True, "Images (PNG / JPEG)",
                               lambda p: p.get("dataset") == "uploads",
                               "To run on your own images, set Dataset to uploads."),
    "text.source": FileParam("texts", "path", False, "Text file (.txt, one text per line, or .csv)",
                             lambda p: p.get("mode") == "file",
                             "To read your own texts from a file, set Mode to file."),
    "custom.model": FileParam("models", "path", False, "Model file (TorchScript .pt or ONNX .onnx)",
                              lambda p: True),
    "tabular.csv": FileParam("tables", "path", False, "Table (.csv or .tsv, a header line first)", lambda p: True),
}

SetParam = Callable[[str, Any], None]
Params = Callable[[], Mapping[str, Any]]


def files_section(node: NodeSpec, set_param: SetParam, params: Params) -> None:
    """Draw the section for ``node`` when its agent reads files. ``set_param(name, value)`` edits
    the node; ``params()`` reads its parameters as they are when a callback runs."""
    spec = FILE_PARAMS.get(node.agent)
    if spec is None:
        return
    st.markdown("**Your files**")
    if not spec.applies(node.params):
        st.caption(spec.otherwise)
        return
    kind = uploads.KINDS[spec.kind]
    nonce_key = f"upload.nonce.{node.id}"
    key = f"upload.{node.id}.{st.session_state.get(nonce_key, 0)}"
    st.file_uploader(
        spec.label, type=[s.lstrip(".") for s in kind.suffixes], accept_multiple_files=spec.multiple,
        key=key, on_change=_received, args=(node.id, spec, key, nonce_key, set_param, params),
        help=f"Checked, then kept in the data folder (uploads/{kind.name}); at most "
             f"{kind.max_bytes / 2**20:.0f} MB per file. The same file uploaded twice is kept once.")
    for ok, text in st.session_state.pop(f"upload.report.{node.id}", []):
        (st.success if ok else st.error)(text)
    _chooser(node, spec, set_param)
    if node.agent == "text.source":
        _text_column(node, set_param)
    if node.agent == "tabular.csv":
        _samples(node.id, set_param)
        _table_columns(node, set_param)


def _received(node_id: str, spec: FileParam, key: str, nonce_key: str, set_param: SetParam, params: Params) -> None:
    """The uploader's callback: keep each file (or report why not), then point the node at them."""
    got = st.session_state.get(key)
    files = [f for f in (got if isinstance(got, list) else [got]) if f is not None]
    report: list[tuple[bool, str]] = []
    kept: list[str] = []
    for f in files:
        try:
            stored = uploads.store_upload(spec.kind, f.name, f.getvalue(), owner=_owner())
        except ValueError as exc:  # UploadError, ModelFileError, TextFileError: the message says what to fix
            report.append((False, f"{escape_md(f.name)} was not kept: {escape_md(str(exc))}"))
            continue
        kept.append(stored.path)
        report.append((True, f"Kept {escape_md(stored.name)} ({escape_md(stored.detail)})"))
    if kept:
        if spec.multiple:
            current = [p for p in params().get(spec.param, []) if p not in kept]
            set_param(spec.param, current + kept)
        else:
            set_param(spec.param, kept[-1])
    st.session_state[f"upload.report.{node_id}"] = report
    st.session_state[nonce_key] = st.session_state.get(nonce_key, 0) + 1  # a fresh, empty uploader


def _chooser(node: NodeSpec, spec: FileParam, set_param: SetParam) -> None:
    """Pick among the files uploaded before (and whatever path the node names already)."""
    stored = uploads.list_uploads(spec.kind, owner=_owner())
    labels = {f.path: f"{f.name} · {_size(f.size)} · {time.strftime('%Y-%m-%d %H:%M', time.localtime(f.modified))}"
              for f in stored}
    key = f"upload.pick.{node.id}"
    if spec.multiple:
        current = [str(p) for p in node.params.get(spec.param, [])]
        options = list(dict.fromkeys([*current, *labels]))
        if not options:
            st.caption("No images uploaded yet.")
            return
        # the shown value is also the default (but in the run that sets it): a widget the browser
        # re-creates after an interrupted rerun reports its default (see ui.forms._widget)
        default = [] if sync_widget(key, current) else current
        st.multiselect("Images this node reads", options, default=default, key=key,
                       format_func=lambda p: labels.get(p, p),
                       on_change=lambda: set_param(spec.param, list(st.session_state[key])),
                       help="Uploaded images, newest first; remove one to stop reading it.")
        missing = [p for p in current if p not in labels]
        if missing:
            st.caption("Not uploaded here (read from the server's disk): "
                       + ", ".join(code_md(p) for p in missing[:5]) + (" ..." if len(missing) > 5 else ""))
        return
    current = str(node.params.get(spec.param) or _NONE)
    options = list(dict.fromkeys([_NONE, *([current] if current else []), *labels]))
    if len(options) == 1:
        st.caption(f"No {uploads.KINDS[spec.kind].label}s uploaded yet.")
        return
    index = 0 if sync_widget(key, current) else options.index(current)
    st.selectbox("File this node reads", options, index=index, key=key,
                 format_func=lambda p: labels.get(p, p) if p else "(none)",
                 on_change=lambda: set_param(spec.param, st.session_state[key]),
                 help="Uploaded files, newest first.")


def _text_column(node: NodeSpec, set_param: SetParam) -> None:
    """For a CSV file: pick the column holding the text from the file's own header."""
    columns = uploads.csv_columns(str(node.params.get("path") or ""))
    if not columns:
        return
    current = str(node.params.get("column", "text"))
    if current not in columns:
        st.warning(f"This file has no column {code_md(current)}; pick the one holding the text.")
    options = columns if current in columns else [current, *columns]
    key = f"upload.column.{node.id}"
    index = 0 if sync_widget(key, current) else options.index(current)
    st.selectbox("Column holding the text", options, index=index, key=key,
                 on_change=lambda: set_param("column", st.session_state[key]),
                 help="From the CSV file's header line.")


def _table_columns(node: NodeSpec, set_param: SetParam) -> None:
    """For a CSV table: a preview of its first rows as they will be read (numbers or text), then
    its id and ground-truth columns picked from the file's own header."""
    from engine.agents.table_io import header

    path = str(node.params.get("path") or "")
    columns = header(path)
    if not columns:
        return
    _table_preview(path, str(node.params.get("id_column") or ""), node.id)
    for param, label, empty, help_text in (
            ("id_column", "Id column", "(a column named id, else row numbers)",
             "The column holding each row's id: merges join on it, sinks write it."),
            ("target", "Ground-truth column", "(none)",
             "The column holding the true class, if any: a scorer after this node then reports its accuracy.")):
        current = str(node.params.get(param) or "")
        if current and current not in columns:
            st.warning(f"This file has no column {code_md(current)}; pick one of its columns.")
        options = [empty, *columns] + ([current] if current and current not in columns else [])
        chosen = current or empty
        key = f"upload.{param}.{node.id}"
        index = 0 if sync_widget(key, chosen) else options.index(chosen)
        st.selectbox(label, options, index=index, key=key, help=help_text + " From the file's header line.",
                     on_change=lambda p=param, k=key, e=empty: set_param(p, "" if st.session_state[k] == e
                                                                         else st.session_state[k]))


def _samples(node_id: str, set_param: SetParam) -> None:
    """Buttons that keep a GENERATED sample table as an upload and point the node at it (and its
    ground truth): a class can try the table source before anyone has a file."""
    from engine.agents.table_io import SAMPLES

    cols = st.columns(len(SAMPLES))
    for col, (dataset, sample) in zip(cols, SAMPLES.items(), strict=True):
        col.button(f"Sample: {dataset.replace('_', ' ')}", key=f"upload.sample.{dataset}.{node_id}",
                   help=sample.label, on_click=_use_sample, args=(node_id, dataset, set_param))


def _use_sample(node_id: str, dataset: str, set_param: SetParam) -> None:
    from engine.agents.table_io import SAMPLES, sample_csv

    sample = SAMPLES[dataset]
    stored = uploads.store_upload("tables", sample.name, sample_csv(dataset), owner=_owner())
    set_param("path", stored.path)
    set_param("target", sample.target)
    st.session_state[f"upload.report.{node_id}"] = [
        (True, f"Kept {escape_md(stored.name)} ({escape_md(stored.detail)}); ground truth: {code_md(sample.target)}")]


def _table_preview(path: str, id_column: str, node_id: str) -> None:
    from engine.agents.table_io import read_table

    try:
        table = read_table(path, id_column, max_rows=PREVIEW_ROWS)
    except ValueError:  # a malformed file: the node's finding says where
        return
    rows = [{"id": row_id, **{c: values[i] for c, values in table.columns.items()}} for i, row_id in enumerate(table.ids)]
    st.caption(f"First {len(rows)} rows as read: " + ", ".join(
        f"{escape_md(c)} ({kind})" for c, kind in list(table.types.items())[:12])
        + (" ..." if len(table.types) > 12 else ""))
    st.dataframe(rows, hide_index=True, key=f"upload.preview.{node_id}")


def _owner() -> str | None:
    """In the lab mode, each user uploads to and picks from a folder of their own."""
    user = current_user()
    return user.name if user is not None else None


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n >= 2**20 else f"{n / 2**10:.0f} KB" if n >= 2**10 else f"{n} B"
