"""Safe loading of user-supplied model files for ``custom.model``: TorchScript (``torch.jit.load``,
never ``torch.load``) or ONNX (onnxruntime). Size-limited, type-checked by magic bytes, and every
failure is a ``ModelFileError`` that says what is wrong and how to fix it.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.errors import ModelFileError, suggest
from engine.settings import FileVersion, file_version, resolve_data_path

MAX_MODEL_BYTES = 200 * 2**20
TORCHSCRIPT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript")
ONNX_SUFFIXES = (".onnx",)
_ZIP_MAGIC = b"PK\x03\x04"


def resolve_model_path(path: str) -> Path:
    """``path`` itself when absolute, else under the data folder; checks it is a readable file."""
    if not path.strip():
        raise ModelFileError("no model file given; set the `path` parameter to a .pt "
                             "(TorchScript) or .onnx file")
    file = resolve_data_path(path)
    if not file.is_file():
        raise ModelFileError(f"model file {file} does not exist; check the `path` parameter "
                             "(relative paths start in the data folder)")
    return file


def detect_format(file: Path, declared: str = "auto", max_bytes: int | None = None) -> str:
    """``torchscript`` or ``onnx``, from the size limit, the suffix and the first bytes."""
    max_bytes = MAX_MODEL_BYTES if max_bytes is None else max_bytes
    size = file.stat().st_size
    if size > max_bytes:
        raise ModelFileError(f"model file {file.name} is {size / 2**20:.1f} MB; the limit is "
                             f"{max_bytes / 2**20:.0f} MB — export a smaller model")
    if size == 0:
        raise ModelFileError(f"model file {file.name} is empty; export the model again")
    with file.open("rb") as fh:
        head = fh.read(4)
    suffix = file.suffix.lower()
    fmt = declared
    if fmt == "auto":
        fmt = "onnx" if suffix in ONNX_SUFFIXES else "torchscript" if suffix in TORCHSCRIPT_SUFFIXES else ""
        if not fmt:
            raise ModelFileError(f"{file.name}: unknown model type; use a {', '.join(TORCHSCRIPT_SUFFIXES)} "
                                 f"(TorchScript) or .onnx file, or set `format`")
    if fmt == "torchscript" and head != _ZIP_MAGIC:
        raise ModelFileError(f"{file.name} is not a TorchScript archive (it is not a zip file); "
                             "save it with torch.jit.script(model).save(path) or torch.jit.trace")
    if fmt == "onnx" and (head[:1] != b"\x08" or head == _ZIP_MAGIC):
        raise ModelFileError(f"{file.name} is not an ONNX model (it does not start like an ONNX "
                             "protobuf); export it with torch.onnx.export or the onnx package")
    return fmt


def load_model(path: str, declared: str = "auto", device: str = "cpu",
               max_bytes: int | None = None, output: str = "") -> tuple[str, Callable[[Any], Any]]:
    """(format, predict) where ``predict`` maps a float tensor batch to the model's output tensor:
    ``output`` names which one for a model with several (ONNX: its name; TorchScript returning a
    tuple: its position, ``"0"``, ``"1"``...); empty: the first."""
    file = resolve_model_path(path)
    fmt = detect_format(file, declared, max_bytes)
    return fmt, (_torchscript(file, device, output) if fmt == "torchscript" else _onnx(file, device, output))


def _torchscript(file: Path, device: str, output: str = "") -> Callable[[Any], Any]:
    import torch

    try:
        with warnings.catch_warnings():  # torch 2.9+ marks TorchScript deprecated; still supported
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(file), map_location=device).eval()
    except Exception as exc:
        raise ModelFileError(f"{file.name} could not be loaded as TorchScript ({type(exc).__name__}:"
                             f" {str(exc).splitlines()[0] if str(exc) else 'corrupt archive'}); "
                             "save it with torch.jit.script(model).save(path)") from None

    if output and not output.isdigit():
        raise ModelFileError(f"output {output!r}: a TorchScript model's outputs have no names; give "
                             "the position of the one to use in the tuple it returns (0, 1, ...)")
    position = int(output or 0)
    # the batch arrives as float32; a model saved in float64 or float16 takes its own type
    dtype = next((t.dtype for t in module.parameters() if t.is_floating_point()), torch.float32)

    def predict(batch: Any) -> Any:
        with torch.no_grad():
            out = module(batch.to(device, dtype if batch.is_floating_point() else batch.dtype))
        if isinstance(out, tuple | list):
            if position >= len(out):
                raise ValueError(f"output {position} was asked for, but the model returns {len(out)} "
                                 f"values; set `output` to 0..{len(out) - 1}")
            out = out[position]
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"the TorchScript model returned {type(out).__name__}, not a tensor")
        return out.cpu().float() if out.is_floating_point() else out.cpu()

    return predict


def _onnx(file: Path, device: str, output: str = "") -> Callable[[Any], Any]:
    import numpy as np
    import onnxruntime as ort
    import torch

    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        providers.insert(0, "CUDAExecutionProvider")
    try:
        session = ort.InferenceSession(str(file), providers=providers)
    except Exception as exc:
        raise ModelFileError(f"{file.name} could not be loaded as ONNX ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0][:300] if str(exc) else 'corrupt file'}); "
                             "check the export") from None
    first, *others = session.get_inputs()
    required = [i.name for i in others]  # ONNX inputs have no defaults: each one must be fed
    if required:
        raise ModelFileError(f"{file.name} takes {len(required) + 1} inputs ({first.name}, "
                             f"{', '.join(required)}); custom.model feeds one tensor. Export a model "
                             "with a single input (wrap the others as constants)")
    dtype = _ONNX_TYPES.get(first.type)
    if dtype is None:
        raise ModelFileError(f"{file.name}'s input {first.name} is a {first.type}; custom.model feeds "
                             f"numbers ({', '.join(sorted(_ONNX_TYPES))}). Export a numeric input")
    fixed = first.shape[0] if first.shape and isinstance(first.shape[0], int) and first.shape[0] > 0 else None
    outputs = session.get_outputs()
    names = [o.name for o in outputs]
    if output and output not in names:
        close = suggest(output, names)
        raise ModelFileError(f"{file.name} has no output {output!r}; its outputs are {', '.join(names)}"
                             + (f" (did you mean {close[0]!r}?)" if close else "") + "; set `output` to one of them")
    chosen = outputs[names.index(output) if output else 0]
    if not chosen.type.startswith("tensor("):
        tensors = [o.name for o in outputs if o.type.startswith("tensor(")]
        raise ModelFileError(f"{file.name}'s output {chosen.name} is a {chosen.type}, not a tensor (a scikit-learn "
                             "export's ZipMap gives a list of dictionaries); "
                             + (f"set `output` to a tensor output ({', '.join(tensors)}), or " if tensors else "")
                             + "export it with zipmap=False")

    def predict(batch: Any) -> Any:
        array = batch.detach().cpu().numpy().astype(dtype, copy=False)
        if fixed is None or len(array) == fixed:
            out = session.run([chosen.name], {first.name: array})[0]
        else:  # exported with a fixed batch size (torch.onnx.export without dynamic axes): feed it
            # chunks of that size, the last padded with zeros and its padding cut from the output
            parts = []
            for start in range(0, len(array), fixed):
                chunk = array[start:start + fixed]
                rows = len(chunk)
                if rows < fixed:
                    chunk = np.concatenate([chunk, np.zeros((fixed - rows, *chunk.shape[1:]), chunk.dtype)])
                parts.append(session.run([chosen.name], {first.name: chunk})[0][:rows])
            out = np.concatenate(parts) if parts else np.zeros((0,), np.float32)
        out = np.asarray(out)
        return torch.from_numpy(out.astype(np.float32) if out.dtype.kind == "f" else out)

    predict.signature = _onnx_signature(session)  # type: ignore[attr-defined]  # shown on upload
    predict.fixed_batch = fixed  # type: ignore[attr-defined]
    return predict


# ONNX input element types custom.model can feed, as numpy types (the batch arrives as float32)
_ONNX_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
               "tensor(int64)": "int64", "tensor(int32)": "int32"}


def onnx_input_shape(path: str) -> tuple[int | None, ...] | None:
    """The shape of an ONNX model's input, None where a dimension is symbolic (``N``); None when
    the file is not an ONNX model that loads here. For checks before a run (validation), so it
    never raises; read once per version of the file (``settings.file_version``)."""
    try:
        file = resolve_model_path(path)
        if detect_format(file) != "onnx":
            return None
        return _onnx_input_shape(file_version(file))
    except (ModelFileError, OSError, ValueError):
        return None


@functools.lru_cache(maxsize=64)
def _onnx_input_shape(version: FileVersion) -> tuple[int | None, ...] | None:
    try:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        first = ort.InferenceSession(version[0], options, providers=["CPUExecutionProvider"]).get_inputs()[0]
    except Exception:  # not loadable here: the run reports why
        return None
    return tuple(d if isinstance(d, int) and d > 0 else None for d in first.shape)


def _onnx_signature(session: Any) -> str:
    """What an ONNX model takes and gives, e.g. ``input x [N, 4] -> output y [N, 3]`` (symbolic
    sizes by name), to choose ``input_kind`` / ``columns`` from."""

    def port(i: Any) -> str:
        if not i.type.startswith("tensor("):  # a ZipMap's seq(map(...)): not usable, say what it is
            return f"{i.name} ({i.type})"
        return f"{i.name} [{', '.join(str(d) if d not in (None, '') else '?' for d in i.shape)}]"

    def ports(items: Any) -> str:
        return ", ".join(port(i) for i in items)

    return f"input {ports(session.get_inputs())} -> output {ports(session.get_outputs())}"
