"""Files a user hands over in the browser (images, text files, models), kept in the data folder
for the agents that read files: ``vision.source`` (dataset ``uploads``), ``text.source`` (mode
``file``), ``tabular.csv`` and ``custom.model``.

Each upload is checked before it is kept, with the same safe readers the agents use when they
run: PNG/JPEG by their first bytes and a full decode (size and pixel limits), text as UTF-8 with
at least one text, a model by its magic bytes and a real load on the CPU (TorchScript through
``torch.jit.load``, ONNX through onnxruntime; never pickle). A file that fails is not kept, and
the error says what is wrong and how to fix it.

Kept files live under ``<data folder>/uploads/<kind>/`` (in the lab mode, in a folder of the
signed-in user's below it) as ``<first 12 hex of the SHA-256>-<name>``:
the same bytes uploaded twice are kept once, two different files of the same name both stay,
and a name from the browser never chooses a folder (it is reduced to letters, digits, ``.``,
``_`` and ``-``). Writes go to a hidden part folder beside the kept files, then are renamed: a
crash leaves either the whole file or none. Nodes refer to a kept file by its path relative to
the data folder (``uploads/images/...``), which the agents resolve there.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.errors import ServiceGridError
from engine.settings import UPLOADS_DIR, data_dir, resolve_data_path

_PART_PREFIX = ".part-"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_NAME_CHARS = 80
# a PNG/JPEG file, uploaded or read by vision.source (engine.agents.vision_data reads it from here:
# that module imports torch, which an upload's size check need not)
MAX_IMAGE_BYTES = 10 * 2**20
IMAGE_MAGIC = {b"\x89PNG\r\n\x1a\n": "PNG", b"\xff\xd8\xff": "JPEG"}  # a file's first bytes


def image_header_problem(name: str, size: int, head: bytes, max_bytes: int = MAX_IMAGE_BYTES) -> str | None:
    """What makes a file no image the agents read, from its size in bytes and its first bytes
    (at least 8), or None: the check before any decode, for uploads, runs and validation."""
    if size > max_bytes:
        return f"image {name!r} is {size / 2**20:.1f} MB; the limit is {max_bytes // 2**20} MB. Shrink or re-encode it."
    if not any(head.startswith(magic) for magic in IMAGE_MAGIC):
        return f"image {name!r} is not a PNG or JPEG file (checked by its first bytes); convert it to PNG or JPEG"
    return None


def image_file_problem(path: str) -> str | None:
    """What ``vision.source`` would refuse in an image file, found from its size and first bytes
    (no decode, no torch: for validation before the run), or None."""
    try:
        file = resolve_data_path(path)
        size = file.stat().st_size
        with file.open("rb") as fh:
            head = fh.read(8)
    except (OSError, ValueError) as exc:
        return str(exc)
    return image_header_problem(file.name, size, head)


class UploadError(ServiceGridError, ValueError):
    """An uploaded file was refused: wrong type, too large, empty, or not readable as its kind."""


@dataclass(frozen=True)
class UploadKind:
    name: str
    label: str  # for messages: "image", "text file", "model"
    suffixes: tuple[str, ...]
    max_bytes: int
    check: Callable[[Path, str], str]  # (the written part file, the file's name) -> a short description


@dataclass(frozen=True)
class StoredFile:
    """One kept upload. ``path`` is relative to the data folder, as a node's parameter holds it."""

    kind: str
    name: str  # the file's (made safe) name, without the content prefix
    path: str
    size: int
    modified: float
    detail: str = ""  # what the check found ("PNG, 640 x 480"), set when it was just stored


def _check_image(file: Path, name: str) -> str:
    from PIL import Image

    from engine.agents.vision_data import decode_image

    data = file.read_bytes()
    decode_image(data, name, 8, 1)  # the agent's own checks: magic bytes, pixel limit, a full decode
    with Image.open(file) as img:
        return f"{img.format}, {img.size[0]} x {img.size[1]} px"


def _check_text(file: Path, name: str) -> str:
    """A .txt file as ``text.source`` reads it (UTF-8, one text per line); a .csv by its header
    and rows (the column holding the text is chosen on the node afterwards)."""
    from engine.agents.text_io import TextFileError, csv_rows, read_text_file

    if file.suffix.lower() == ".txt":
        texts = read_text_file(str(file))
        if not texts:
            raise UploadError(f"{name} holds no text (every line is empty); upload a file with one text per line")
        return f"{len(texts):,} text{'s' if len(texts) != 1 else ''}, one per line"
    try:
        content = file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise TextFileError(f"{name} is not UTF-8 (byte {exc.start}); save it as UTF-8 and upload it again") from None
    reader = csv_rows(content)
    columns = list(reader.fieldnames or [])
    rows = sum(1 for _ in reader)
    if not columns or not rows:
        raise UploadError(f"{name} has no rows under a header line; the first line must name the columns")
    shown = ", ".join(columns[:6]) + (", ..." if len(columns) > 6 else "")
    return f"CSV, {rows:,} rows; columns {shown}"


def _check_table(file: Path, name: str) -> str:
    """A CSV table as ``tabular.csv`` reads it: UTF-8, a header naming every column once, the same
    number of fields on every line."""
    from engine.agents.table_io import read_table

    table = read_table(str(file))
    numeric = sum(kind != "str" for kind in table.types.values())
    shown = ", ".join(list(table.columns)[:6]) + (", ..." if len(table.columns) > 6 else "")
    return f"table, {len(table.ids):,} rows x {len(table.columns)} columns ({numeric} numeric); columns {shown}"


def _check_model(file: Path, name: str) -> str:
    from engine.agents.model_files import detect_format, load_model

    fmt = detect_format(file)
    try:
        _, predict = load_model(str(file), fmt, "cpu")
    except ModuleNotFoundError as exc:  # ONNX without onnxruntime installed
        raise UploadError(f"{name} is an ONNX model, but {exc.name} is not installed here; "
                          "install it with pip install 'servicegrid[onnx]', then upload again") from None
    if fmt == "torchscript":
        return "TorchScript model"
    fixed = predict.fixed_batch  # type: ignore[attr-defined]  # model_files._onnx
    chunks = f"; exported with a fixed batch of {fixed}, so it is fed {fixed} at a time" if fixed else ""
    return f"ONNX model; {predict.signature}{chunks}"  # type: ignore[attr-defined]


def _kinds() -> dict[str, UploadKind]:
    from engine.agents.model_files import MAX_MODEL_BYTES, ONNX_SUFFIXES, TORCHSCRIPT_SUFFIXES
    from engine.agents.table_io import MAX_TABLE_FILE_BYTES, TABLE_SUFFIXES
    from engine.agents.text_io import MAX_TEXT_FILE_BYTES

    return {
        "images": UploadKind("images", "image", (".png", ".jpg", ".jpeg"), MAX_IMAGE_BYTES, _check_image),
        "texts": UploadKind("texts", "text file", (".txt", ".csv"), MAX_TEXT_FILE_BYTES, _check_text),
        "models": UploadKind("models", "model", TORCHSCRIPT_SUFFIXES + ONNX_SUFFIXES, MAX_MODEL_BYTES, _check_model),
        "tables": UploadKind("tables", "table", TABLE_SUFFIXES, MAX_TABLE_FILE_BYTES, _check_table),
    }


KINDS = _kinds()


def kind_of(kind: str) -> UploadKind:
    try:
        return KINDS[kind]
    except KeyError:
        raise UploadError(f"unknown upload kind {kind!r}; use one of {', '.join(KINDS)}") from None


def safe_name(name: str, kind: UploadKind) -> str:
    """``name`` reduced to a plain file name of allowed characters, with an allowed suffix."""
    base = Path(str(name).replace("\\", "/")).name
    suffix = Path(base).suffix.lower()
    if suffix not in kind.suffixes:
        raise UploadError(f"{base or '(no name)'}: a {kind.label} must be a {', '.join(kind.suffixes)} file")
    stem = _UNSAFE.sub("_", base[: len(base) - len(suffix)]).strip("._-")[: MAX_NAME_CHARS - len(suffix)]
    return (stem or kind.name.rstrip("s")) + suffix


def folder(kind: str, owner: str | None = None) -> Path:
    """Where ``kind`` files are kept: shared, or ``owner``'s own (the lab mode's signed-in user)."""
    path = data_dir() / UPLOADS_DIR / kind_of(kind).name
    if owner is not None:
        tag = hashlib.sha256(owner.encode("utf-8")).hexdigest()[:8]  # "a.b" and "a_b" stay apart
        path = path / f"{_UNSAFE.sub('_', owner).strip('._-')[:40] or 'user'}-{tag}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def store_upload(kind: str, name: str, data: bytes, owner: str | None = None) -> StoredFile:
    """Check ``data`` as a ``kind`` file named ``name`` and keep it (in ``owner``'s folder when
    given); returns the kept file.

    Raises:
        UploadError (or the agents' ModelFileError / TextFileError, both ValueErrors): the file is
        refused and nothing is kept.
    """
    spec = kind_of(kind)
    clean = safe_name(name, spec)
    if not data:
        raise UploadError(f"{clean} is empty; upload the file again")
    if len(data) > spec.max_bytes:
        raise UploadError(f"{clean} is {len(data) / 2**20:.1f} MB; a {spec.label} may be at most "
                          f"{spec.max_bytes / 2**20:.0f} MB")
    target_dir = folder(spec.name, owner)
    forget_stale_parts(spec.name, owner=owner)  # what a crash mid-upload left behind
    final = target_dir / f"{hashlib.sha256(data).hexdigest()[:12]}-{clean}"
    if final.is_file() and final.stat().st_size == len(data):
        return _stored(spec.name, final, detail="already uploaded")
    # the part file has the upload's own name (in a hidden folder of its own), so the readers'
    # messages name the user's file
    part_dir = Path(tempfile.mkdtemp(prefix=_PART_PREFIX, dir=target_dir))
    part = part_dir / clean
    try:
        with part.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        detail = spec.check(part, clean)
        os.replace(part, final)
    finally:
        shutil.rmtree(part_dir, ignore_errors=True)
    return _stored(spec.name, final, detail=detail)


def list_uploads(kind: str, owner: str | None = None) -> list[StoredFile]:
    """The kept files of ``kind`` (shared, or ``owner``'s own), newest first."""
    files = [p for p in folder(kind, owner).iterdir() if p.is_file() and not p.name.startswith(_PART_PREFIX)]
    return sorted((_stored(kind, p) for p in files), key=lambda f: (-f.modified, f.name))


def forget_stale_parts(kind: str, older_than_s: float = 3600.0, owner: str | None = None) -> int:
    """Remove part folders a crash left behind (older than ``older_than_s``: not an upload still
    being checked); returns how many. Called by each upload into the same folder."""
    now, removed = time.time(), 0
    for p in folder(kind, owner).glob(f"{_PART_PREFIX}*"):
        try:
            if now - p.stat().st_mtime > older_than_s:
                shutil.rmtree(p) if p.is_dir() else p.unlink()
                removed += 1
        except FileNotFoundError:
            pass
    return removed


def csv_columns(path: str) -> list[str]:
    """The header of the CSV file a node names (relative paths in the data folder); [] when it is
    not a readable CSV (the node's run, or validation, says why)."""
    from engine.agents.table_io import header

    return header(path) if path.strip().lower().endswith(".csv") else []


def _stored(kind: str, path: Path, detail: str = "") -> StoredFile:
    stat = path.stat()
    display = path.name.split("-", 1)[1] if re.match(r"^[0-9a-f]{12}-", path.name) else path.name
    rel = path.relative_to(data_dir()).as_posix()
    return StoredFile(kind, display, rel, stat.st_size, stat.st_mtime, detail)
