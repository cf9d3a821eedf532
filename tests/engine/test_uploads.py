"""Browser uploads kept for the file-reading agents (engine.uploads): checked with the agents' own
readers before they are kept, stored under the data folder by content, never half-written, and
usable by the agents through the relative path a node holds."""

from __future__ import annotations

import io
import os
import pickle
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from engine import uploads
from engine.agents.custom import CustomModel, CustomModelParams
from engine.errors import ModelFileError, ServiceGridError
from engine.registry import default_registry
from engine.spec import RunContext


def png(size: tuple[int, int] = (20, 10), colour: tuple[int, int, int] = (255, 0, 0)) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def torchscript_bytes(tmp_path: Path) -> bytes:
    layer = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16 * 16, 2))
    path = tmp_path / "made.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.9+, still supported
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(layer).save(str(path))
    return path.read_bytes()


def kept(data_dir: Path, kind: str) -> list[Path]:
    """Every entry of the kind's folder, part folders included (there must be none)."""
    folder = data_dir / "data" / "uploads" / kind
    return sorted(folder.iterdir()) if folder.exists() else []


def test_an_image_is_checked_kept_by_content_and_read_by_the_source(data_dir: Path) -> None:
    stored = uploads.store_upload("images", "Scan 1 (left).PNG", png((40, 30)))
    assert stored.kind == "images" and stored.name == "Scan_1_left.png"
    assert stored.path.startswith("uploads/images/") and stored.path.endswith("-Scan_1_left.png")
    assert stored.detail == "PNG, 40 x 30 px" and stored.size == len(png((40, 30)))
    assert (data_dir / "data" / stored.path).read_bytes() == png((40, 30))

    again = uploads.store_upload("images", "other-name.png", png((40, 30)))  # same bytes, new name
    assert again.path != stored.path  # the name is part of the file: both stay
    same = uploads.store_upload("images", "Scan 1 (left).PNG", png((40, 30)))
    assert same.path == stored.path and same.detail == "already uploaded"
    assert len(kept(data_dir, "images")) == 2

    # the node holds the relative path; the agent resolves it in the data folder
    source = default_registry().get("vision.source")
    agent = source.factory(source.params(dataset="uploads", paths=[stored.path], size=8, channels=3))
    batch = agent.run({}, RunContext())["images"]
    assert batch["images"].shape == (1, 3, 8, 8) and batch["ids"] == [Path(stored.path).name]
    assert float(batch["images"][0, 0].mean()) > 0.99  # the red image, not some other file


def test_listing_is_newest_first_and_hides_part_folders(data_dir: Path) -> None:
    import os

    first = uploads.store_upload("images", "a.png", png(colour=(1, 2, 3)))
    second = uploads.store_upload("images", "b.png", png(colour=(4, 5, 6)))
    os.utime(data_dir / "data" / first.path, (1_000_000, 1_000_000))
    part = data_dir / "data" / "uploads" / "images" / ".part-crashed"
    part.mkdir()
    (part / "c.png").write_bytes(png())
    assert [f.path for f in uploads.list_uploads("images")] == [second.path, first.path]
    os.utime(part, (1_000_000, 1_000_000))
    uploads.store_upload("images", "c.png", png(colour=(7, 8, 9)))  # the next upload sweeps it away
    assert not part.exists()
    fresh = data_dir / "data" / "uploads" / "images" / ".part-in-progress"
    fresh.mkdir()  # an upload being checked right now is left alone
    assert uploads.forget_stale_parts("images") == 0 and fresh.exists()


@pytest.mark.parametrize(("kind", "name", "data", "message"), [
    ("images", "notes.png", b"hello, not an image", "not a PNG or JPEG"),
    ("images", "cut.png", png()[:30], "could not be decoded"),
    ("images", "photo.gif", b"GIF89a", "must be a .png, .jpg, .jpeg file"),
    ("images", "empty.png", b"", "is empty"),
    ("texts", "latin1.txt", "café\n".encode("latin-1"), "not UTF-8"),
    ("texts", "blank.txt", b"\n  \n\n", "holds no text"),
    ("texts", "header-only.csv", b"text,label\n", "no rows under a header"),
    ("texts", "run.sh", b"echo hi", "must be a .txt, .csv file"),
    ("models", "junk.pt", b"\x00\x01not a zip", "not a TorchScript archive"),
    ("models", "text.onnx", b"hello world", "not an ONNX model"),
    ("models", "weights.bin", b"PK\x03\x04", "must be a .pt, .pth, .ts, .torchscript, .onnx file"),
    ("sounds", "a.wav", b"RIFF", "unknown upload kind"),
])
def test_bad_files_are_refused_with_a_clear_error_and_nothing_is_kept(
        data_dir: Path, kind: str, name: str, data: bytes, message: str) -> None:
    with pytest.raises((ServiceGridError, ValueError), match=message) as info:
        uploads.store_upload(kind, name, data)
    assert name.split(".")[0] in str(info.value) or kind == "sounds"  # names the user's file, not a temp file
    assert ".part-" not in str(info.value)
    if kind in uploads.KINDS:
        assert kept(data_dir, kind) == []  # no file and no part folder left behind


def test_size_limits_are_enforced_before_anything_is_written(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kind = uploads.KINDS["images"]
    monkeypatch.setitem(uploads.KINDS, "images", uploads.UploadKind(
        kind.name, kind.label, kind.suffixes, 100, kind.check))
    with pytest.raises(uploads.UploadError, match=r"may be at most 0 MB"):
        uploads.store_upload("images", "big.png", png((200, 200)))
    assert kept(data_dir, "images") == []


def test_names_from_the_browser_never_choose_a_folder(data_dir: Path) -> None:
    for name in ("../../escape.png", "/etc/passwd.png", "..\\..\\win.png", "a/b/c.png", ".hidden.png", "...png"):
        stored = uploads.store_upload("images", name, png(colour=(len(name), 0, 0)))
        path = (data_dir / "data" / stored.path).resolve()
        assert path.parent == (data_dir / "data" / "uploads" / "images").resolve(), name
        assert not stored.name.startswith(".")


def test_text_files_are_read_by_the_text_source(data_dir: Path) -> None:
    stored = uploads.store_upload("texts", "reviews.txt", b"great product\n\nawful, broke at once\n")
    assert stored.detail == "2 texts, one per line"
    spec = default_registry().get("text.source")
    out = spec.factory(spec.params(mode="file", path=stored.path)).run({}, RunContext())["texts"]
    assert out["texts"] == ["great product", "awful, broke at once"]
    table = uploads.store_upload("texts", "tickets.csv", b"id,body\n1,where is my parcel\n2,refund please\n")
    assert table.detail == "CSV, 2 rows; columns id, body"


def test_a_torchscript_model_is_loaded_before_it_is_kept_and_runs_from_its_path(
        data_dir: Path, tmp_path: Path) -> None:
    stored = uploads.store_upload("models", "my classifier.pt", torchscript_bytes(tmp_path))
    assert stored.detail == "TorchScript model" and stored.path.endswith("-my_classifier.pt")
    agent = CustomModel(CustomModelParams(path=stored.path, input_kind="image_batch", classes=["a", "b"]))
    images = {"images": torch.rand(3, 1, 16, 16), "ids": ["x", "y", "z"]}
    out = agent.run({"in": images}, RunContext())["out"]
    assert out["ids"] == ["x", "y", "z"] and out["scores"].shape == (3, 2)
    assert torch.allclose(out["scores"].sum(1), torch.ones(3))


def test_an_onnx_model_is_kept(data_dir: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    def relu(batch: int | str, inputs: tuple[str, ...] = ("x",)) -> bytes:
        graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "relu",
                                  [helper.make_tensor_value_info(n, TensorProto.FLOAT, [batch, 4]) for n in inputs],
                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 4])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        return model.SerializeToString()

    stored = uploads.store_upload("models", "relu.onnx", relu("N"))
    assert stored.detail == "ONNX model; input x [N, 4] -> output y [N, 4]"  # to pick input_kind from
    stored = uploads.store_upload("models", "one.onnx", relu(1))
    assert stored.detail == ("ONNX model; input x [1, 4] -> output y [1, 4]; exported with a fixed batch of 1, "
                             "so it is fed 1 at a time")
    with pytest.raises(ModelFileError, match="takes 2 inputs"):
        uploads.store_upload("models", "two.onnx", relu("N", ("x", "mask")))
    assert sorted(p.name.split("-", 1)[1] for p in kept(data_dir, "models")) == ["one.onnx", "relu.onnx"]


def test_a_pickle_posing_as_a_model_is_refused_and_never_run(data_dir: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self) -> tuple[Any, tuple[str, str]]:
            return (open, (str(marker), "w"))

    torch.save({"x": Payload()}, tmp_path / "saved.pt")  # a zip archive holding the payload in data.pkl
    marker.unlink(missing_ok=True)
    for name, data in (("saved.pt", (tmp_path / "saved.pt").read_bytes()), ("raw.pt", pickle.dumps(Payload()))):
        with pytest.raises(ModelFileError):
            uploads.store_upload("models", name, data)
    assert not marker.exists() and kept(data_dir, "models") == []


def test_validation_reports_a_file_that_is_not_there_until_it_is_uploaded(data_dir: Path) -> None:
    from engine.issues import IssueCode
    from engine.validation import validate
    from engine.workflow import Workflow

    def findings(nodes: list[dict[str, Any]]) -> list[tuple[str, str | None, str]]:
        wf = Workflow.model_validate({"name": "files", "nodes": nodes, "edges": []})
        return [(i.code, i.node, i.message) for i in validate(wf) if i.code == IssueCode.MISSING_FILE]

    path = "uploads/images/" + "0" * 12 + "-later.png"
    source = {"id": "scans", "agent": "vision.source", "params": {"dataset": "uploads", "paths": [path]}}
    [(_, node, message)] = findings([source])
    assert node == "scans" and path in message and "not found on this machine" in message
    [(_, node, message)] = findings([{"id": "m", "agent": "custom.model"}])
    assert node == "m" and "names no file" in message
    assert findings([{"id": "t", "agent": "text.source"}]) == []  # a generated set reads no file

    stored = uploads.store_upload("images", "later.png", png())
    assert findings([{**source, "params": {"dataset": "uploads", "paths": [stored.path]}}]) == []
    absolute = str(data_dir / "data" / stored.path)  # a path on this machine works as well
    assert findings([{**source, "params": {"dataset": "uploads", "paths": [absolute]}}]) == []


def test_in_lab_mode_nodes_read_only_the_uploads_folder(data_dir: Path, tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """A shared server: a student's node must not read the server's other files, by an absolute
    path, by ``..`` or through a link; uploads still work; the operator may allow more folders."""
    from engine.errors import DataPathError
    from engine.issues import IssueCode
    from engine.validation import validate
    from engine.workflow import Workflow

    secret = tmp_path / "elsewhere" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("the server's own file\n")
    (data_dir / "data").mkdir(exist_ok=True)
    (data_dir / "data" / "link.txt").symlink_to(secret)
    stored = uploads.store_upload("texts", "mine.txt", b"my text\n")
    spec = default_registry().get("text.source")

    def read(path: str) -> list[str]:
        return spec.factory(spec.params(mode="file", path=path)).run({}, RunContext())["texts"]["texts"]

    def finding(path: str) -> str | None:
        wf = Workflow.model_validate({"name": "lab", "nodes": [
            {"id": "t", "agent": "text.source", "params": {"mode": "file", "path": path}}], "edges": []})
        return next((i.message for i in validate(wf) if i.code == IssueCode.MISSING_FILE), None)

    db = data_dir / "data" / "servicegrid.db"
    db.write_text("the lab's database\n")
    outside = [str(secret), "../elsewhere/secret.txt", "link.txt", "servicegrid.db", "uploads/../link.txt"]
    assert read(str(secret)) == ["the server's own file"]  # one person's own machine: anywhere
    assert finding(str(secret)) is None

    monkeypatch.setenv("SERVICEGRID_LAB_MODE", "1")
    for path in outside:
        with pytest.raises(DataPathError, match="outside the folders this server reads files from"):
            read(path)
        assert "outside the folders" in (finding(path) or ""), path
    assert read(stored.path) == ["my text"] and finding(stored.path) is None

    monkeypatch.setenv("SERVICEGRID_FILE_ROOTS", f"{data_dir / 'data'}{os.pathsep}{secret.parent}")
    assert read(str(secret)) == ["the server's own file"] and finding(str(secret)) is None


def test_lab_mode_keeps_a_csv_table_outside_the_uploads_unread(data_dir: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """The table source, its planner and its column picker read nothing outside the folders a
    shared server allows: not the rows, not the header."""
    from engine.agents.table_io import header, read_table, table_shape
    from engine.errors import DataPathError
    from engine.validation import validate
    from engine.workflow import Workflow

    secret = tmp_path / "elsewhere" / "salaries.csv"
    secret.parent.mkdir()
    secret.write_text("name,salary\nceo,999\n")
    mine = uploads.store_upload("tables", "mine.csv", b"a,b\n1,2\n")
    monkeypatch.setenv("SERVICEGRID_LAB_MODE", "1")
    with pytest.raises(DataPathError, match="outside the folders"):
        read_table(str(secret))
    assert header(str(secret)) == [] and table_shape(str(secret)) is None
    wf = Workflow.model_validate({"name": "lab", "nodes": [
        {"id": "t", "agent": "tabular.csv", "params": {"path": str(secret)}}], "edges": []})
    assert [i.code for i in validate(wf) if i.severity == "error"] == ["missing_file"]
    assert header(mine.path) == ["a", "b"] and table_shape(mine.path) == (("a", "b"), 1)


def test_each_owner_keeps_and_lists_their_own_files(data_dir: Path) -> None:
    """The lab mode's users each get a folder: one never sees another's uploads in the list."""
    alice = uploads.store_upload("images", "scan.png", png(), owner="alice@school.org")
    bob = uploads.store_upload("images", "scan.png", png(), owner="bob")
    shared = uploads.store_upload("images", "scan.png", png())
    assert len({alice.path, bob.path, shared.path}) == 3
    assert [f.path for f in uploads.list_uploads("images", owner="alice@school.org")] == [alice.path]
    assert [f.path for f in uploads.list_uploads("images", owner="bob")] == [bob.path]
    assert [f.path for f in uploads.list_uploads("images")] == [shared.path]  # not the users' folders
    images = (data_dir / "data" / "uploads" / "images").resolve()
    for owner in ("../../etc", "a.b", "a_b", "/"):
        stored = uploads.store_upload("images", "x.png", png(colour=(9, 9, 9)), owner=owner)
        assert (data_dir / "data" / stored.path).resolve().parent.parent == images, owner
    assert uploads.folder("images", "a.b") != uploads.folder("images", "a_b")


def test_csv_columns_come_from_the_files_header(data_dir: Path) -> None:
    stored = uploads.store_upload("texts", "tickets.csv", b"id,body, \n1,where is my parcel,\n")
    assert uploads.csv_columns(stored.path) == ["id", "body"]
    assert uploads.csv_columns("uploads/texts/none.csv") == []  # missing: the node's findings say so
    assert uploads.csv_columns(uploads.store_upload("texts", "a.txt", b"hello\n").path) == []
    # a spreadsheet saved in a semicolon locale: the same columns, and the texts read from them
    semi = uploads.store_upload("texts", "semi.csv", "id; body\n1;tr\u00e8s bien, merci\n2;nul\n".encode())
    assert semi.detail == "CSV, 2 rows; columns id, body"
    assert uploads.csv_columns(semi.path) == ["id", "body"]
    from engine.agents.text_io import read_text_file

    assert read_text_file(semi.path, "body") == ["tr\u00e8s bien, merci", "nul"]
