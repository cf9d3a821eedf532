"""The generic model agent: a user's own TorchScript or ONNX file as a service.

Ports are of kind ``any`` (an AgentSpec's ports are fixed, a user's model is not); the parameters
declare what the model takes and returns, and the agent checks the payload against that
declaration at run time, with an error naming the expected payload. Loading is safe: see
engine.agents.model_files.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from engine.agents import runtime
from engine.agents.tables import LABELS_COLUMNS, scores_columns
from engine.agents.torch_agent import TorchAgent
from engine.kinds import DataKind
from engine.registry import agent
from engine.resources import ResourceDemand
from engine.spec import PortSpec, RunContext, picks

_CFG = ConfigDict(extra="forbid", allow_inf_nan=False)
InputKind = Literal["tensor", "image_batch", "embedding", "table"]
OutputKind = Literal["scores", "labels", "embedding", "tensor"]
_EXPECTED = {
    "tensor": "a tensor (or {'tensor': T, 'ids': [...]})",
    "image_batch": "{'images': Tensor[N,C,H,W], 'ids': [...]}",
    "embedding": "{'vectors': Tensor[N,D], 'ids': [...]}",
    "table": "{'columns': {name: numbers}, 'ids': [...]}",
}


class CustomModelParams(BaseModel):
    model_config = _CFG
    path: str = Field("", max_length=1000, description="the model file: .pt (TorchScript) or "
                      ".onnx; relative paths start in the data folder")
    format: Literal["auto", "torchscript", "onnx"] = Field("auto", description="file type "
                                                           "(auto: from the suffix)")
    input_kind: InputKind = Field("tensor", description="what the model's input port takes")
    output_kind: OutputKind = Field("scores", description="what its output port gives")
    output: str = Field("", max_length=200, description="which of the model's outputs to use when it has "
                        "several: ONNX by name (e.g. probabilities), TorchScript by position (0, 1, ...); "
                        "empty: the first")
    columns: list[str] = Field(default_factory=list, max_length=10_000, json_schema_extra=picks("columns"),
                               description="table input: the numeric columns, in the model's order "
                               "(empty: all numeric columns but the ground truth)")
    classes: list[str] = Field(default_factory=list, max_length=100_000,
                               description="class names of the output (scores / labels)")
    softmax: bool = Field(True, description="scores / labels: apply softmax to the outputs")


def _ids(payload: Any, n: int) -> list[str]:
    ids = payload.get("ids") if isinstance(payload, dict) else None
    return [str(i) for i in ids] if ids is not None and len(ids) == n else runtime.ids_for(n)


def input_tensor(payload: Any, kind: str, columns: list[str]) -> Any:
    """The float batch tensor the declared input kind says the payload holds."""
    import torch

    def wrong(detail: str) -> TypeError:
        return TypeError(f"custom.model expects input_kind {kind!r}, i.e. {_EXPECTED[kind]}, "
                         f"but {detail}; connect a matching output or change input_kind")

    got = sorted(payload) if isinstance(payload, dict) else type(payload).__name__
    if kind == "tensor":
        value = payload.get("tensor") if isinstance(payload, dict) else payload
        if value is None:
            raise wrong(f"received {got}")
        try:
            return torch.as_tensor(value, dtype=torch.float32)
        except (TypeError, ValueError, RuntimeError):
            raise wrong("it is not numeric") from None
    key = {"image_batch": "images", "embedding": "vectors", "table": "columns"}[kind]
    if not isinstance(payload, dict) or key not in payload:
        raise wrong(f"received {got}")
    if kind != "table":
        value = torch.as_tensor(payload[key], dtype=torch.float32)
        if value.ndim != (4 if kind == "image_batch" else 2):
            raise wrong(f"{key} has shape {tuple(value.shape)}")
        return value
    cols = payload["columns"]
    truth = payload.get("target")  # the ground-truth column is never a feature (it would leak the answer)
    names = columns or [c for c, v in cols.items() if c != truth and _numeric(v)]
    missing = [c for c in names if c not in cols]
    if missing or not names:
        raise wrong(f"the table lacks numeric column(s) {missing or '(none found)'}")
    try:
        return torch.stack([torch.as_tensor(list(cols[c]), dtype=torch.float32) for c in names], 1)
    except (TypeError, ValueError, RuntimeError):
        raise wrong(f"a column among {names} is not numeric") from None


_IN_KINDS = {"tensor": DataKind.TENSOR, "image_batch": DataKind.IMAGE_BATCH, "embedding": DataKind.EMBEDDING,
             "table": DataKind.TABLE}
_OUT_KINDS = {"scores": DataKind.SCORES, "labels": DataKind.LABELS, "embedding": DataKind.EMBEDDING,
              "tensor": DataKind.TENSOR}


def _port_kinds(p: CustomModelParams) -> dict[str, tuple[DataKind, str]]:
    """What the ports carry for these params: validation checks the wires against it before the
    run (the spec's ports are ``any``: one agent for every declaration)."""
    return {"in": (_IN_KINDS[p.input_kind], "input_kind"), "out": (_OUT_KINDS[p.output_kind], "output_kind")}


def _needs_shape(p: CustomModelParams) -> tuple[int | None, int | None, int | None] | None:
    """The (channels, height, width) an ONNX model declared for images takes (None where any)."""
    if p.input_kind != "image_batch" or not p.path.strip():
        return None
    from engine.agents.model_files import onnx_input_shape

    shape = onnx_input_shape(p.path)
    if shape is None or len(shape) != 4:
        return None
    return shape[1], shape[2], shape[3]


_RANKS = {"image_batch": (4, "N x channels x height x width"), "embedding": (2, "N x dimensions"),
          "table": (2, "N x columns")}


# a user's model on a GPU: its weights twice (the file read, then the module on the device) and
# the workspaces; its activations are the user's to declare (the node's gpu_memory_mb) beyond
# what a small model takes (0.016 MB an item for a linear layer on 64 x 64 images, measured)
_CUSTOM_GPU_ITEM_MB = 0.05


def _gpu_memory(p: CustomModelParams | None) -> tuple[float, float]:
    from engine.agents.model_files import resolve_model_path
    from engine.errors import ModelFileError

    weights = 0.0
    if p is not None:
        try:
            weights = resolve_model_path(p.path).stat().st_size / 2**20
        except (OSError, ValueError, ModelFileError):  # validation names the file's problem
            weights = 0.0
    return runtime.GPU_WORKSPACE_MB + 2 * weights, _CUSTOM_GPU_ITEM_MB


def _model_file_problem(p: CustomModelParams) -> str | None:
    """What the loader would refuse from the file's size, suffix and first bytes (the full load
    is left to the run); for an ONNX file, an input that cannot take what ``input_kind`` and
    ``columns`` declare (its rank, its number of columns); or None."""
    from engine.agents.model_files import detect_format, onnx_input_shape, resolve_model_path
    from engine.errors import ModelFileError

    try:
        fmt = detect_format(resolve_model_path(p.path), p.format)
    except (ModelFileError, OSError, ValueError) as exc:
        return str(exc)
    shape = onnx_input_shape(p.path) if fmt == "onnx" and p.input_kind in _RANKS else None
    if shape is None:
        return None
    rank, layout = _RANKS[p.input_kind]
    shown = "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"
    if len(shape) != rank:
        return (f"input_kind {p.input_kind!r} gives the model {layout}, but its input is {shown}; "
                f"set input_kind to what the model takes")
    if p.input_kind == "table" and p.columns and shape[1] is not None and shape[1] != len(p.columns):
        return (f"the model takes {shape[1]} values per row ({shown}) but `columns` names "
                f"{len(p.columns)}; list the {shape[1]} columns it was trained on, in order")
    return None


def _output_columns(p: CustomModelParams) -> tuple[str, ...] | None:
    """What the output reads as, where the params say it: labels, or scores over the declared
    ``classes`` (with the ground truth an image data set passes on); None where the model's
    output width decides (no classes declared, vectors, a tensor)."""
    if p.output_kind == "labels":
        return LABELS_COLUMNS
    if p.output_kind == "scores" and p.classes:
        return scores_columns(p.classes)
    return None


def _numeric(values: Any) -> bool:
    items = values.tolist() if hasattr(values, "tolist") else list(values)
    return bool(items) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in items)


@agent("custom.model", category="custom", label="Your model (TorchScript / ONNX)",
       color="#a855f7",
       description="Runs your own TorchScript (.pt) or ONNX (.onnx) model. Declare in the "
       "parameters what it takes (tensor, images, embeddings, table) and returns (scores, "
       "labels, embeddings, tensor); the payload is checked against that when it runs.",
       inputs=[PortSpec("in", DataKind.ANY, "the payload of the declared input kind")],
       outputs=[PortSpec("out", DataKind.ANY, "the payload of the declared output kind")],
       params=CustomModelParams, resources=ResourceDemand(cpu=1, memory_mb=512, device="any"),
       gpu_memory_fn=lambda p, _images: _gpu_memory(p),
       expected_duration_s=0.5, files_fn=lambda p: ("path", [p.path]), kinds_fn=lambda p: _port_kinds(p),
       needs_columns_fn=lambda p: tuple(p.columns) if p.input_kind == "table" else (),
       needs_shape_fn=_needs_shape, file_check_fn=lambda p: _model_file_problem(p),
       columns_fn=lambda p, _received: _output_columns(p))
class CustomModel(TorchAgent):
    def build(self, device: str) -> None:
        from engine.agents.model_files import load_model

        p: CustomModelParams = self.params  # type: ignore[assignment]
        self.format, self.predict = load_model(p.path, p.format, device, output=p.output)

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        import torch

        p: CustomModelParams = self.params  # type: ignore[assignment]
        self.ready(ctx)
        payload = inputs["in"]
        batch = input_tensor(payload, p.input_kind, p.columns)
        if ctx.max_items is not None:
            batch = batch[:ctx.max_items]
        outs = []
        with runtime.torch_threads(ctx.threads):
            for part in runtime.batches(len(batch), ctx.batch_size):
                ctx.check_cancelled()
                try:
                    outs.append(self.predict(batch[part]))
                except Exception as exc:
                    raise ValueError(f"the {self.format} model rejected a batch of shape "
                                     f"{tuple(batch[part].shape)}: {str(exc).splitlines()[0][:300]}; "
                                     "check input_kind / columns against the model's input") from None
                ctx.progress(part.stop, len(batch))
        out = torch.cat(outs) if outs else torch.zeros(0)
        return {"out": self._shape_output(out, _ids(payload, len(batch)), payload)}

    def _shape_output(self, out: Any, ids: list[str], payload: Any) -> dict[str, Any]:
        p: CustomModelParams = self.params  # type: ignore[assignment]
        if p.output_kind == "tensor":
            return {"tensor": out, "ids": ids}
        if out.ndim != 2:
            raise ValueError(f"output_kind {p.output_kind!r} needs a 2-d output (items × values); "
                             f"the model returned shape {tuple(out.shape)}"
                             + ("; a model with several outputs (a class label, then probabilities) can "
                                "be read from another with `output`, or set output_kind to 'tensor'"
                                if out.ndim == 1 else ""))
        if p.output_kind == "embedding":
            return {"vectors": out.float(), "ids": ids}
        classes = p.classes or [f"class_{k}" for k in range(out.shape[1])]
        if len(classes) != out.shape[1]:
            raise ValueError(f"{len(classes)} class names are declared but the model returns "
                             f"{out.shape[1]} values per item; fix `classes`")
        probs = out.float().softmax(1) if p.softmax else out.float()
        labels = payload.get("labels") if isinstance(payload, dict) else None
        conf, best = probs.max(1)
        if p.output_kind == "labels":
            return {"labels": [classes[int(b)] for b in best], "ids": ids,
                    "confidence": [round(float(c), 4) for c in conf]}
        return {"scores": probs, "classes": classes, "ids": ids,
                "labels": labels if labels is None or len(labels) == len(ids) else None}
