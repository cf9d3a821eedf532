"""The generic model agent: tiny TorchScript and ONNX models built here run through it with the
declared kinds; corrupt, oversized, mistyped files and mismatched payloads give clear errors."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import pytest
import torch

import engine.agents.model_files as model_files
from engine.agents.custom import CustomModel, CustomModelParams
from engine.errors import ModelFileError
from engine.spec import ExecutionStrategy, Lifecycle, RunContext

W = torch.tensor([[1.0, -1.0, 0.5], [0.0, 2.0, -1.0], [0.5, 0.5, 0.5], [-1.0, 0.0, 1.0]])
B = torch.tensor([0.1, -0.2, 0.3])


@pytest.fixture
def torchscript_file(tmp_path: Path) -> Path:
    layer = torch.nn.Linear(4, 3)
    with torch.no_grad():
        layer.weight.copy_(W.T)
        layer.bias.copy_(B)
    path = tmp_path / "linear.pt"
    with warnings.catch_warnings():  # TorchScript is deprecated in torch 2.9+, still supported
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(layer).save(str(path))
    return path


def _save_onnx(graph, path: Path, *, ml: bool = False) -> Path:
    """An ONNX graph saved as a checked model (opset 13; with the ai.onnx.ml domain for ZipMap)."""
    import onnx
    from onnx import helper

    opsets = [helper.make_opsetid("", 13)] + ([helper.make_opsetid("ai.onnx.ml", 1)] if ml else [])
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


@pytest.fixture
def onnx_file(tmp_path: Path) -> Path:
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["y"])],
        "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])],
        initializer=[numpy_helper.from_array(W.numpy(), "W"), numpy_helper.from_array(B.numpy(), "B")],
    )
    return _save_onnx(graph, tmp_path / "linear.onnx")


def _linear_onnx(path: Path, batch: int | str = "N", elem: int | None = None, inputs: int = 1) -> Path:
    """The W, B linear model as ONNX with a given batch dimension (an int: exported without dynamic
    axes), input element type and number of inputs (extra ones are added to x)."""
    from onnx import TensorProto, helper, numpy_helper

    elem = TensorProto.FLOAT if elem is None else elem
    names = ["x"] + [f"x{k}" for k in range(1, inputs)]
    nodes = [helper.make_node("Add", [names[0], n], [names[0] + "_"]) for n in names[1:2]]
    first = names[0] + "_" if inputs > 1 else names[0]
    nodes += [helper.make_node("Cast", [first], ["xf"], to=TensorProto.FLOAT),
              helper.make_node("MatMul", ["xf", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["y"])]
    graph = helper.make_graph(
        nodes, "linear", [helper.make_tensor_value_info(n, elem, [batch, 4]) for n in names],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])],
        initializer=[numpy_helper.from_array(W.numpy(), "W"), numpy_helper.from_array(B.numpy(), "B")])
    return _save_onnx(graph, path)


def test_onnx_models_exported_with_a_fixed_batch_or_other_input_types_run(tmp_path: Path):
    """torch.onnx.export without dynamic axes fixes the batch size (often 1): the agent feeds the
    model chunks of that size, padding the last; float64 / int64 inputs get the batch in their type."""
    from onnx import TensorProto

    many = torch.cat([X] * 4)[:11]  # 11 rows: not a multiple of 4
    want = (many @ W + B).softmax(1)
    for batch in (1, 4, "N"):
        path = _linear_onnx(tmp_path / f"b{batch}.onnx", batch)
        for ctx in (RunContext(), RunContext(lifecycle=Lifecycle(execution=ExecutionStrategy(batch_size=3)))):
            got = run({"path": str(path), "output_kind": "scores"}, {"tensor": many}, ctx)["scores"]
            assert got.shape == (11, 3) and torch.allclose(got, want, atol=1e-5), (batch, ctx.batch_size)
    doubles = _linear_onnx(tmp_path / "f64.onnx", elem=TensorProto.DOUBLE)
    got = run({"path": str(doubles), "output_kind": "scores"}, {"tensor": many})["scores"]
    assert got.dtype == torch.float32 and torch.allclose(got, want, atol=1e-5)
    ints = _linear_onnx(tmp_path / "i64.onnx", elem=TensorProto.INT64)
    whole = torch.tensor([[1.0, 2.0, 0.0, 3.0], [4.0, 0.0, 1.0, 1.0]])
    got = run({"path": str(ints), "output_kind": "tensor"}, {"tensor": whole})["tensor"]
    assert torch.allclose(got, whole @ W + B, atol=1e-5)


def test_a_torchscript_model_saved_in_float64_takes_the_float32_batch(tmp_path: Path):
    layer = torch.nn.Linear(4, 3).double()
    with torch.no_grad():
        layer.weight.copy_(W.T)
        layer.bias.copy_(B)
    path = tmp_path / "double.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(layer).save(str(path))
    got = run({"path": str(path), "output_kind": "tensor"}, {"tensor": X})["tensor"]
    assert got.dtype == torch.float32 and torch.allclose(got, X @ W + B, atol=1e-5)


def test_onnx_model_with_two_inputs_is_refused_when_loaded(tmp_path: Path):
    path = _linear_onnx(tmp_path / "two.onnx", inputs=2)
    with pytest.raises(ModelFileError, match=r"takes 2 inputs \(x, x1\).*single input"):
        model_files.load_model(str(path))


def run(params: dict, payload, ctx: RunContext | None = None):
    agent = CustomModel(CustomModelParams(**params))
    return agent.run({"in": payload}, ctx or RunContext())["out"]


X = torch.tensor([[1.0, 2.0, 3.0, 4.0], [0.0, -1.0, 0.5, 2.0], [3.0, 0.0, 0.0, 1.0]])


def test_torchscript_model_gives_softmax_scores_with_class_names(torchscript_file: Path):
    out = run({"path": str(torchscript_file), "input_kind": "tensor", "output_kind": "scores",
               "classes": ["a", "b", "c"]}, {"tensor": X, "ids": ["x", "y", "z"]})
    assert torch.allclose(out["scores"], (X @ W + B).softmax(1), atol=1e-5)
    assert out["classes"] == ["a", "b", "c"] and out["ids"] == ["x", "y", "z"]


def test_onnx_model_reads_table_columns_and_gives_labels(onnx_file: Path):
    table = {"columns": {f"f{k}": X[:, k].tolist() for k in range(4)} | {"name": ["p", "q", "r"]},
             "ids": ["p", "q", "r"]}
    out = run({"path": str(onnx_file), "input_kind": "table", "output_kind": "labels",
               "classes": ["a", "b", "c"]}, table)
    expected = (X @ W + B).argmax(1).tolist()
    assert out["labels"] == [["a", "b", "c"][k] for k in expected] and out["ids"] == ["p", "q", "r"]
    # a table that names its ground truth (tabular.source, tabular.csv's target): never a feature
    labelled = {**table, "columns": {**table["columns"], "is_fraud": [0, 1, 0]}, "target": "is_fraud"}
    assert run({"path": str(onnx_file), "input_kind": "table", "output_kind": "labels",
                "classes": ["a", "b", "c"]}, labelled)["labels"] == out["labels"]


def test_both_formats_agree_and_batches_report_progress(torchscript_file: Path, onnx_file: Path):
    seen: list[int] = []
    ctx = RunContext(lifecycle=Lifecycle(execution=ExecutionStrategy(batch_size=2)),
                     on_progress=lambda d, t: seen.append(d))
    a = run({"path": str(torchscript_file), "output_kind": "tensor"}, X, ctx)["tensor"]
    b = run({"path": str(onnx_file), "output_kind": "embedding"}, {"tensor": X})["vectors"]
    assert torch.allclose(a, b, atol=1e-5) and seen == [2, 3]


def test_relative_paths_start_in_the_data_folder(data_dir: Path, torchscript_file: Path):
    target = data_dir / "data" / "models" / "m.pt"
    target.parent.mkdir(parents=True)
    target.write_bytes(torchscript_file.read_bytes())
    out = run({"path": "models/m.pt", "output_kind": "tensor"}, X)
    assert out["tensor"].shape == (3, 3)


def test_declared_input_kind_is_checked_against_the_payload(torchscript_file: Path):
    with pytest.raises(TypeError, match=r"expects input_kind 'image_batch'.*received"):
        run({"path": str(torchscript_file), "input_kind": "image_batch"}, {"tensor": X})
    with pytest.raises(TypeError, match="lacks numeric column"):
        run({"path": str(torchscript_file), "input_kind": "table", "columns": ["nope"]},
            {"columns": {"a": [1.0]}, "ids": ["r"]})


def test_model_rejecting_the_shape_and_wrong_class_count_are_clear(torchscript_file: Path):
    with pytest.raises(ValueError, match="rejected a batch of shape \\(3, 2\\)"):
        run({"path": str(torchscript_file)}, X[:, :2])
    with pytest.raises(ValueError, match="2 class names are declared but the model returns 3"):
        run({"path": str(torchscript_file), "classes": ["a", "b"]}, X)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("junk.pt", b"\x00\x01not a zip at all", "not a TorchScript archive"),
    ("empty.pt", b"", "is empty"),
    ("junk.onnx", b"PK\x03\x04rest", "not an ONNX model"),
    ("text.onnx", b"hello world", "not an ONNX model"),
    ("bad.onnx", b"\x08\x07\x12\xff\xff\xff garbage", "could not be loaded as ONNX"),
    ("model.bin", b"PK\x03\x04", "unknown model type"),
])
def test_wrong_or_corrupt_files_raise_model_file_error(tmp_path: Path, name, content, message):
    (tmp_path / name).write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        run({"path": str(tmp_path / name)}, X)


def test_corrupt_zip_is_not_loadable_as_torchscript(tmp_path: Path):
    path = tmp_path / "fake.pt"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", b"not a pickle either")
    with pytest.raises(ModelFileError, match="could not be loaded as TorchScript"):
        run({"path": str(path)}, X)


def test_oversized_and_missing_files_are_refused(torchscript_file: Path, monkeypatch):
    monkeypatch.setattr(model_files, "MAX_MODEL_BYTES", 100)
    with pytest.raises(ModelFileError, match="the limit is"):
        model_files.load_model(str(torchscript_file))
    with pytest.raises(ModelFileError, match="does not exist"):
        run({"path": str(torchscript_file.with_name("nope.pt"))}, X)
    with pytest.raises(ModelFileError, match="no model file given"):
        run({}, X)


def test_loader_never_uses_pickle_loading():
    source = Path(model_files.__file__).read_text(encoding="utf-8")
    assert "torch.load(" not in source and "pickle" not in source


def test_cuda_request_falls_back_to_cpu_and_says_so(torchscript_file: Path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    agent = CustomModel(CustomModelParams(path=str(torchscript_file), output_kind="tensor"))
    agent.load("cuda:0")
    ctx = RunContext()
    agent.run({"in": X}, ctx)
    assert agent.device == "cpu" and any("running on the CPU instead" in m for m in ctx.logs)


def test_wires_are_checked_against_the_declared_kinds_before_the_run(torchscript_file: Path):
    """The ports are ``any`` in the spec; input_kind / output_kind say what they carry, and
    validation holds the wires to that, naming the parameter to change."""
    from engine.issues import IssueCode
    from engine.validation import validate
    from engine.workflow import Workflow

    def mismatches(params: dict, downstream: str = "decision.threshold") -> list[tuple[str | None, str]]:
        wf = Workflow.model_validate({"name": "kinds", "nodes": [
            {"id": "img", "agent": "vision.source"},
            {"id": "m", "agent": "custom.model", "params": {"path": str(torchscript_file), **params}},
            {"id": "d", "agent": downstream}],
            "edges": [{"source": "img", "target": "m"}, {"source": "m", "target": "d"}]})
        return [(i.node, i.hint) for i in validate(wf) if i.code == IssueCode.TYPE_MISMATCH]

    [(node, hint)] = mismatches({})  # input_kind defaults to tensor: images do not fit
    assert node == "m" and hint.startswith("set input_kind of node 'm' to 'image_batch'")
    assert mismatches({"input_kind": "image_batch"}) == []  # scores out -> threshold's scores in
    [(node, hint)] = mismatches({"input_kind": "image_batch", "output_kind": "embedding"})
    assert node == "d" and hint.startswith("set output_kind of node 'm' to 'scores'")


def _image_model(path: Path, shape: list) -> Path:
    """An ONNX model for images of ``shape`` (N, C, H, W) giving two scores (mean of each image)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2, 3], keepdims=0),
         helper.make_node("Unsqueeze", ["m", "one"], ["y1"]), helper.make_node("Concat", ["y1", "y1"], ["y"], axis=1)],
        "image", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [shape[0], 2])],
        initializer=[helper.make_tensor("one", TensorProto.INT64, [1], [1])])
    return _save_onnx(graph, path)


def test_validation_holds_planned_images_to_the_onnx_models_input(tmp_path: Path):
    from engine.registry import default_registry
    from engine.validation import validate
    from engine.workflow import Workflow

    model = _image_model(tmp_path / "rgb32.onnx", ["N", 3, 32, 32])
    any_size = _image_model(tmp_path / "rgb_any.onnx", ["N", 3, "H", "W"])

    def flow(path: Path, channels: int, size: int) -> Workflow:
        return Workflow.model_validate({"schema_version": 1, "name": "own", "nodes": [
            {"id": "src", "agent": "vision.source", "params": {"n_items": 8, "channels": channels}},
            {"id": "pre", "agent": "vision.preprocess", "params": {"size": size}},
            {"id": "m", "agent": "custom.model", "params": {"path": str(path), "input_kind": "image_batch",
                                                            "output_kind": "scores"}}],
            "edges": [{"source": "src", "target": "pre"}, {"source": "pre", "target": "m"}]})

    registry = default_registry()
    found = {(c, s): [i for i in validate(flow(model, c, s), registry) if i.code == "image_size_mismatch"]
             for c, s in ((3, 32), (3, 64), (1, 32), (1, 64))}
    assert found[(3, 32)] == []
    (wrong,) = found[(1, 64)]
    assert (wrong.node, wrong.port) == ("m", "in")
    assert wrong.message == ("edge pre -> m: node 'm' (custom.model) takes images of 3 channels x 32 x 32 px, but "
                             "the images from 'pre' are planned at 1 channel x 64 x 64 px")
    assert wrong.hint == "set channels of node 'src' to 3 and size of node 'pre' to 32"
    assert [i.hint for i in found[(3, 64)]] == ["set size of node 'pre' to 32"]
    assert [i.hint for i in found[(1, 32)]] == ["set channels of node 'src' to 3"]
    assert [i for i in validate(flow(any_size, 3, 64), registry) if i.code == "image_size_mismatch"] == []
    # and the size the check accepts is the one the model runs on
    src = {"images": torch.rand(4, 3, 32, 32), "ids": list("abcd")}
    out = run({"path": str(model), "input_kind": "image_batch", "output_kind": "tensor"}, src)["tensor"]
    assert torch.allclose(out[:, 0], src["images"].mean(dim=(1, 2, 3)), atol=1e-5)


def test_a_table_models_columns_are_checked_against_a_known_table(onnx_file: Path):
    from engine.registry import default_registry
    from engine.validation import validate
    from engine.workflow import Workflow

    wf = Workflow.model_validate({"schema_version": 1, "name": "own", "nodes": [
        {"id": "t", "agent": "tabular.source", "params": {"dataset": "credit_applicants"}},
        {"id": "m", "agent": "custom.model", "params": {
            "path": str(onnx_file), "input_kind": "table", "output_kind": "labels",
            "columns": ["age", "income_k", "debt_ratio", "late_payment"]}}],
        "edges": [{"source": "t", "target": "m"}]})
    (issue,) = [i for i in validate(wf, default_registry()) if i.code == "missing_columns"]
    assert issue.node == "m" and "'late_payment'" in issue.message and "'late_payments'" in issue.hint



def test_a_models_declared_scores_have_known_columns(onnx_file: Path):
    """Scores over declared classes read as a table of known columns, so what reads them is
    checked before the run (a branch on a class's score typed wrong) and picks from them."""
    from engine.agents.tables import to_table
    from engine.items import planned_items
    from engine.registry import default_registry
    from engine.validation import validate
    from engine.workflow import Workflow

    def flow(**params: object) -> Workflow:
        return Workflow.model_validate({"schema_version": 1, "nodes": [
            {"id": "t", "agent": "tabular.source", "params": {"dataset": "credit_applicants"}},
            {"id": "m", "agent": "custom.model", "params": {
                "path": str(onnx_file), "input_kind": "table", "output_kind": "scores",
                "columns": ["age", "income_k", "debt_ratio", "late_payments"], **params}},
            {"id": "b", "agent": "flow.branch", "params": {"field": "score_hihg", "op": ">", "value": 0.5}}],
            "edges": [{"source": "t", "target": "m"}, {"source": "m", "target": "b"}]})

    registry = default_registry()
    typed = flow(classes=["low", "mid", "high"])
    (issue,) = [i for i in validate(typed, registry) if i.is_error]
    assert issue.code == "missing_columns" and issue.hint.startswith("did you mean 'score_high'?")
    planned = planned_items(typed, registry).columns_on("m", "out")
    table = {"columns": {c: X[:, k].tolist() for k, c in enumerate(["age", "income_k", "debt_ratio", "late_payments"])},
             "ids": ["p", "q", "r"]}
    out = run({"path": str(onnx_file), "input_kind": "table", "output_kind": "scores",
               "columns": ["age", "income_k", "debt_ratio", "late_payments"], "classes": ["low", "mid", "high"]}, table)
    assert set(to_table(out)[0]) <= set(planned) and "score_high" in planned
    assert not [i for i in validate(flow(), registry) if i.is_error]  # no classes: the width decides, unknown

def _sklearn_like(path: Path) -> Path:
    """What a scikit-learn classifier exported to ONNX looks like: a `label` (int64) output first,
    then `probabilities` (float), then the same as a ZipMap (a list of dicts)."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["xw"]), helper.make_node("Add", ["xw", "B"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
         helper.make_node("ArgMax", ["probabilities"], ["label"], axis=1, keepdims=0),
         helper.make_node("ZipMap", ["probabilities"], ["output_probability"], domain="ai.onnx.ml",
                          classlabels_int64s=[0, 1, 2])],
        "sk", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3]),
         helper.make_value_info("output_probability", helper.make_sequence_type_proto(
             helper.make_map_type_proto(TensorProto.INT64, helper.make_tensor_type_proto(TensorProto.FLOAT, []))))],
        initializer=[numpy_helper.from_array(W.numpy(), "W"), numpy_helper.from_array(B.numpy(), "B")])
    return _save_onnx(graph, path, ml=True)


def test_a_models_output_is_chosen_by_name_or_position(tmp_path: Path, torchscript_file: Path):
    path = str(_sklearn_like(tmp_path / "sk.onnx"))
    assert model_files.load_model(path)[1].signature == (  # type: ignore[attr-defined]
        "input x [N, 4] -> output label [N], probabilities [N, 3], output_probability "
        "(seq(map(int64,tensor(float))))")
    want = (X @ W + B).softmax(1)
    labels = run({"path": path, "output_kind": "tensor"}, {"tensor": X})["tensor"]  # the first: label
    assert labels.tolist() == want.argmax(1).tolist()
    got = run({"path": path, "output": "probabilities", "softmax": False, "classes": ["a", "b", "c"]},
              {"tensor": X})["scores"]
    assert torch.allclose(got, want, atol=1e-5)
    with pytest.raises(ValueError, match=r"returned shape \(3,\); a model with several outputs .* with `output`"):
        run({"path": path}, {"tensor": X})  # scores from the int64 label output
    with pytest.raises(ModelFileError, match=r"no output 'probability'; its outputs are label, probabilities, "
                                             r"output_probability \(did you mean 'probabilities'\?\)"):
        run({"path": path, "output": "probability"}, {"tensor": X})
    with pytest.raises(ModelFileError, match=r"is a seq\(map\(int64,tensor\(float\)\)\), not a tensor.*"
                                             r"\(label, probabilities\), or export it with zipmap=False"):
        run({"path": path, "output": "output_probability"}, {"tensor": X})
    with pytest.raises(ModelFileError, match="outputs have no names; give the position"):
        run({"path": str(torchscript_file), "output": "scores"}, {"tensor": X})


def test_a_torchscript_models_tuple_output_is_chosen_by_position(tmp_path: Path):
    class Two(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("w", W.clone())
            self.register_buffer("b", B.clone())

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x @ self.w + self.b, x * 2

    path = tmp_path / "two.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(Two()).save(str(path))
    first = run({"path": str(path), "output_kind": "tensor"}, {"tensor": X})["tensor"]
    second = run({"path": str(path), "output_kind": "tensor", "output": "1"}, {"tensor": X})["tensor"]
    assert torch.allclose(first, X @ W + B, atol=1e-5) and torch.allclose(second, X * 2)
    with pytest.raises(ValueError, match=r"output 2 was asked for, but the model returns 2 values; set `output` to 0..1"):
        run({"path": str(path), "output_kind": "tensor", "output": "2"}, {"tensor": X})


def test_an_onnx_input_that_cannot_take_the_declared_payload_is_found_before_the_run(onnx_file: Path,
                                                                                     tmp_path: Path):
    """The model takes [N, 4]: declared as images, or fed 5 named columns, validation says so
    (unreadable_file) from the file, before anything runs."""
    from engine.registry import default_registry
    from engine.validation import validate
    from engine.workflow import Workflow

    def problems(**params: object) -> list[str]:
        wf = Workflow.model_validate({"schema_version": 1, "name": "w", "nodes": [
            {"id": "m", "agent": "custom.model", "params": {"path": str(onnx_file), **params}}]})
        return [i.message for i in validate(wf, default_registry()) if i.code == "unreadable_file"]

    assert problems(input_kind="table", columns=["a", "b", "c", "d"]) == []
    assert problems(input_kind="tensor") == []
    assert problems(input_kind="image_batch") == [
        "node 'm' (custom.model): input_kind 'image_batch' gives the model N x channels x height x width, "
        "but its input is [?, 4]; set input_kind to what the model takes"]
    assert problems(input_kind="table", columns=["a", "b", "c", "d", "e"]) == [
        "node 'm' (custom.model): the model takes 4 values per row ([?, 4]) but `columns` names 5; list "
        "the 4 columns it was trained on, in order"]
