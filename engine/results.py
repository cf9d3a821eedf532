"""Node results on disk: cache keys, safe serialisation (JSON + safetensors, never pickle), summaries.

A result lives in ``data_dir()/results/<key>/``: ``value.json`` holds the output tree with every
tensor or array replaced by ``{"__tensor__": name, "lib": "torch"|"numpy"}``; the tensors sit in
``torch.safetensors`` / ``numpy.safetensors``. Anything else (objects, sets, bytes) is refused.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

from engine.settings import data_dir

SUMMARY_LIMIT = 4096  # bytes of JSON per node's output summary
MAX_ITEMS = 1_000_000  # values in one result tree (nested inputs passed on can grow fast)


class UnserializableError(TypeError):
    """A value holds something that cannot be stored without pickle."""


def cache_key(agent: str, version: str, params: dict[str, Any], inputs: list[tuple[str, str, str]],
              files: list[tuple[str, str]] | None = None) -> str:
    """Hash of the agent, its version, canonical params, ``(port, upstream key, upstream port)``
    and, for a node that reads files, each file's ``(path, content digest)`` (``file_digest``)."""
    doc: dict[str, Any] = {"agent": agent, "version": version, "params": params, "inputs": sorted(inputs)}
    if files:
        doc["files"] = sorted(files)
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()[:32]


_DIGESTS: dict[tuple[str, int, int], str] = {}  # (file, size, mtime ns) -> content digest, this process
MAX_DIGESTS = 4096


def file_digest(path: str) -> str:
    """The SHA-256 of a file a node reads (a path as its parameter gives it; relative paths start in
    the data folder), read once per version of the file (memoised by path, size and modification
    time): a file changed in place changes the node's cache key, so its cached result is not
    reused (ComfyUI's IS_CHANGED); the same bytes written again keep it. ``"unreadable"`` for a
    file that is missing or outside the allowed folders (validation reports those)."""
    from engine.errors import DataPathError
    from engine.settings import resolve_data_path

    try:
        file = resolve_data_path(path)
        st = file.stat()
        memo = (str(file), st.st_size, st.st_mtime_ns)
        if (hit := _DIGESTS.get(memo)) is not None:
            return hit
        digest = hashlib.sha256()
        with open(file, "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except (DataPathError, OSError):
        return "unreadable"
    if len(_DIGESTS) >= MAX_DIGESTS:
        _DIGESTS.clear()
    _DIGESTS[memo] = value = digest.hexdigest()
    return value


def _files_read(spec: Any, canonical: str) -> list[tuple[str, str]] | None:
    """``(path, digest)`` of each file a node with these canonical params reads (``files_fn``)."""
    if spec.files_fn is None:
        return None
    files = spec.files_fn(spec.parse_params(json.loads(canonical)))
    if files is None:
        return None
    return [(str(p), file_digest(str(p))) for p in dict.fromkeys(files[1]) if str(p).strip()]


def canonical_params_json(params: Any) -> str:
    """A parsed parameter model as the canonical JSON its cache key hashes."""
    return json.dumps(params.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), default=str)


def not_cacheable(spec: Any, node: Any) -> str | None:
    """Why a node's result is never stored (so it cannot be reused or pinned), or None. Raises
    what parsing the node's lifecycle overrides raises."""
    if spec.simulated:
        return f"{spec.name} is simulated: it computes nothing to keep"
    if not spec.cacheable:
        return f"{spec.name} has a side effect (it writes or sends something), so it always runs"
    if getattr(node, "faults", None):
        return "it has a fault drill: it runs every time, so the drill shows"
    if spec.lifecycle.merged(node.lifecycle).start.inputs == "any":
        return "it starts on any input, so its result varies with what arrives first"
    return None


def workflow_cache_keys(workflow: Any, registry: Any, params_json: dict[str, str] | None = None, *,
                        natural: dict[str, str] | None = None) -> dict[str, str]:
    """The cache key of each node of ``workflow`` whose result may be cached: real work (not
    simulated), no side effect (``cacheable``), inputs that do not vary by arrival (not the
    ``any`` start rule), and every upstream node keyed. The rule ``RunManager`` runs by, so a
    stored run's results can be found again from its workflow (History). ``params_json``: the
    nodes' canonical params when already known (else parsed here; a node whose params or
    lifecycle no longer parse gets no key). A pinned node's key is its pin's; ``natural``, when
    given, receives the key each pinned node's agent, params and inputs give now (a pin whose key
    differs is stale: the node or its upstream changed since the pinned run)."""
    from engine.graphs import topological_order

    nodes = {n.id: n for n in workflow.nodes}
    in_edges: dict[str, list[Any]] = {nid: [] for nid in nodes}
    for edge in workflow.edges:
        if edge.target in in_edges:
            in_edges[edge.target].append(edge)
    keys: dict[str, str] = {}
    for nid in topological_order(list(nodes), [(e.source, e.target) for e in workflow.edges]) or []:
        node = nodes[nid]
        if node.pin is not None and natural is None:
            keys[nid] = node.pin.key
            continue
        key = _node_key(node, registry, (params_json or {}).get(nid), in_edges[nid], keys)
        if node.pin is not None:
            if key is not None and natural is not None:
                natural[nid] = key
            keys[nid] = node.pin.key
        elif key is not None:
            keys[nid] = key
    return keys


def _node_key(node: Any, registry: Any, canonical: str | None, in_edges: list[Any], keys: dict[str, str]) -> str | None:
    if node.agent not in registry:
        return None
    spec = registry.get(node.agent)
    try:
        if not_cacheable(spec, node) is not None:
            return None
        canonical = canonical or canonical_params_json(spec.parse_params(node.params))
    except Exception:  # params or lifecycle that no longer parse: no key
        return None
    ins = []
    for edge in in_edges:
        up = keys.get(edge.source)
        if up is None:
            return None
        ins.append((edge.target_port or "", up, edge.source_port or ""))
    try:
        files = _files_read(spec, canonical)
    except Exception:  # params its files_fn cannot read: no key (validation reports them)
        return None
    return cache_key(spec.name, spec.version, json.loads(canonical), ins, files)


def unpinnable(workflow: Any, node_id: str, registry: Any) -> str | None:
    """Why node ``node_id`` of ``workflow`` can never be pinned (no such node, or an agent whose
    results are never stored), or None."""
    node = workflow.node(node_id)
    if node is None:
        return f"no node {node_id!r} in workflow {workflow.name!r}"
    if node.agent not in registry:
        return f"node {node_id!r} cannot be pinned: no agent named {node.agent!r} is registered"
    try:
        why = not_cacheable(registry.get(node.agent), node)
    except Exception:
        why = "its lifecycle overrides do not parse"
    return None if why is None else f"node {node_id!r} cannot be pinned: {why}"


def pinned_unreadable(node_id: str, exc: BaseException) -> dict[str, str]:
    """The error of a pinned node whose stored output cannot be read: it fails (it cannot be
    computed instead: its inputs never were), and says how to get going again."""
    return {"type": "PinnedOutputError", "traceback": "", "message": (
        f"node {node_id!r} is pinned, and its pinned output could not be read ({exc}); unpin it to compute it again")}


def pin_issues(workflow: Any, results: ResultStore) -> list[Any]:
    """Errors (``engine.issues.Issue``) for pinned outputs no longer in ``results`` (a workflow
    file from another machine, say): such a node cannot run, since its inputs are not computed."""
    from engine.issues import Issue, IssueCode

    issues = []
    for node in workflow.nodes:
        if node.pin is not None and not results.has(node.pin.key):
            source = f"run {node.pin.run_id}" if node.pin.run_id else "its run"
            issues.append(Issue(
                IssueCode.PIN_MISSING.value, f"node {node.id!r} is pinned to its output from {source}, "
                "which is not in this machine's result cache", node=node.id,
                hint="unpin it to compute it again (then pin the new output if you want)"))
    return issues


def pin_from_run(workflow: Any, node_id: str, run_id: str | None, registry: Any, results: ResultStore) -> Any:
    """The pin (``engine.workflow.PinSpec``) of node ``node_id``'s output in run ``run_id`` of
    ``workflow`` (the workflow that run executed). Raises PinError saying why when the node's
    output is not in the result cache."""
    from engine.errors import PinError
    from engine.workflow import PinSpec

    why = unpinnable(workflow, node_id, registry)
    if why is not None:
        raise PinError(why)
    node = workflow.node(node_id)
    if node.pin is not None:  # pinned in that run: the same output again
        return node.pin.model_copy(update={"run_id": node.pin.run_id or run_id})
    key = workflow_cache_keys(workflow, registry).get(node_id)
    if key is None or not results.has(key):
        raise PinError(f"node {node_id!r} has no stored output from {'run ' + run_id if run_id else 'that run'}: "
                       "it did not finish, the run had the cache off, or a node upstream of it keeps no result; "
                       "run it with the cache on, then pin it")
    return PinSpec(key=key, run_id=run_id)


def encode_value(value: Any) -> tuple[Any, dict[str, Any], dict[str, Any]]:
    """(JSON tree, torch tensors by name, numpy arrays by name); raises UnserializableError."""
    torch_t: dict[str, Any] = {}
    numpy_t: dict[str, Any] = {}
    budget = [MAX_ITEMS]

    def walk(v: Any, path: str) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise UnserializableError(f"{path}: more than {MAX_ITEMS:,} values; too large to store as JSON")
        if v is None or isinstance(v, bool | int | str):
            return v
        if isinstance(v, float):
            return v if math.isfinite(v) else {"__float__": repr(v)}
        if isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                raise UnserializableError(f"{path}: dict keys must be strings")
            return {k: walk(x, f"{path}.{k}") for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [walk(x, f"{path}[{i}]") for i, x in enumerate(v)]
        kind = _array_kind(v)
        if kind == "torch":
            name = f"t{len(torch_t)}"
            torch_t[name] = v.detach().cpu().contiguous()
            return {"__tensor__": name, "lib": "torch"}
        if kind == "numpy":
            if v.dtype.kind not in "biufc":
                raise UnserializableError(f"{path}: numpy array of dtype {v.dtype} cannot be stored")
            name = f"n{len(numpy_t)}"
            numpy_t[name] = v if v.flags.c_contiguous else v.copy()
            return {"__tensor__": name, "lib": "numpy"}
        if kind == "numpy_scalar":
            return walk(v.item(), path)
        raise UnserializableError(f"{path}: a {type(v).__name__} cannot be stored safely")

    return walk(value, "outputs"), torch_t, numpy_t


def decode_value(tree: Any, torch_t: dict[str, Any], numpy_t: dict[str, Any]) -> Any:
    if isinstance(tree, list):
        return [decode_value(x, torch_t, numpy_t) for x in tree]
    if isinstance(tree, dict):
        if "__tensor__" in tree:
            return (torch_t if tree.get("lib") == "torch" else numpy_t)[tree["__tensor__"]]
        if "__float__" in tree and len(tree) == 1:
            return float(tree["__float__"])
        return {k: decode_value(x, torch_t, numpy_t) for k, x in tree.items()}
    return tree


def save_value(directory: Path, value: Any) -> None:
    """Write ``value`` into ``directory`` (created). Raises UnserializableError."""
    tree, torch_t, numpy_t = encode_value(value)
    directory.mkdir(parents=True, exist_ok=True)
    if torch_t:
        from safetensors.torch import save_file as save_torch

        save_torch(torch_t, str(directory / "torch.safetensors"))
    if numpy_t:
        from safetensors.numpy import save_file as save_numpy

        save_numpy(numpy_t, str(directory / "numpy.safetensors"))
    (directory / "value.json").write_text(json.dumps(tree), encoding="utf-8")


def load_value(directory: Path) -> Any:
    tree = json.loads((directory / "value.json").read_text(encoding="utf-8"))
    torch_t: dict[str, Any] = {}
    numpy_t: dict[str, Any] = {}
    if (directory / "torch.safetensors").exists():
        from safetensors.torch import load_file as load_torch

        torch_t = load_torch(str(directory / "torch.safetensors"))
    if (directory / "numpy.safetensors").exists():
        from safetensors.numpy import load_file as load_numpy

        numpy_t = load_numpy(str(directory / "numpy.safetensors"))
    return decode_value(tree, torch_t, numpy_t)


class ResultStore:
    """Cached node outputs by cache key, under ``root`` (default ``data_dir()/results``)."""

    def __init__(self, root: Path | None = None) -> None:
        self._root = root

    @property
    def root(self) -> Path:
        return self._root if self._root is not None else data_dir() / "results"

    def has(self, key: str) -> bool:
        return (self.root / key / "value.json").is_file()

    def load(self, key: str) -> dict[str, Any]:
        return load_value(self.root / key)

    def save(self, key: str, outputs: dict[str, Any], *, replace: bool = False) -> None:
        """Store atomically (write a temp folder, then rename). ``replace``: a node re-run on
        request replaces what the key held (the old entry is moved aside, then removed; a reader
        sees the old or the new entry, never a half-written one). Raises UnserializableError."""
        final = self.root / key
        if final.exists() and not replace:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=self.root))
        try:
            save_value(tmp, outputs)
            if replace and final.exists():
                old = final.with_name(f".{key}.old.{uuid.uuid4().hex[:8]}")
                os.replace(final, old)
                os.replace(tmp, final)
                shutil.rmtree(old, ignore_errors=True)
                return
            os.replace(tmp, final) if not final.exists() else shutil.rmtree(tmp)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another run stored the same key first
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

    def scratch_dir(self) -> Path:
        """A fresh folder for passing values to and from an isolated process."""
        path = self.root.parent / "scratch" / uuid.uuid4().hex
        path.mkdir(parents=True)
        return path


def _array_kind(v: Any) -> str | None:
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(v, torch.Tensor):
        return "torch"
    np = sys.modules.get("numpy")
    if np is not None:
        if isinstance(v, np.ndarray):
            return "numpy"
        if isinstance(v, np.generic):
            return "numpy_scalar"
    return None


def summarize_outputs(outputs: dict[str, Any] | None) -> dict[str, Any]:
    """Per output port a small JSON description (type, shape, first values); < 4 KB in all."""
    if not outputs:
        return {}
    if len(outputs) == 1:  # the common case, without the generator and comprehension below
        (port, v), = outputs.items()
        if v is None or type(v) in _SCALARS:
            return {str(port): _describe_scalar(v)}
    if all(v is None or type(v) in _SCALARS for v in outputs.values()):  # small by construction
        return {str(port): _describe_scalar(v) for port, v in outputs.items()}
    out = {str(port): _describe(value) for port, value in outputs.items()}
    if len(json.dumps(out, default=str)) > SUMMARY_LIMIT:
        out = {port: {"type": d.get("type")} for port, d in out.items()}
    return out


_SCALARS = (bool, int, float)
_NONE = {"type": "NoneType", "value": None}


def _describe_scalar(v: Any) -> dict[str, Any]:
    if v is None:
        return dict(_NONE)
    return {"type": type(v).__name__, "value": v if not isinstance(v, float) or math.isfinite(v) else str(v)}


def _describe(v: Any) -> dict[str, Any]:
    kind = _array_kind(v)
    if kind in ("torch", "numpy"):
        flat = v.reshape(-1)[:5]
        first = flat.tolist() if kind == "numpy" else flat.detach().cpu().tolist()
        return {"type": "tensor" if kind == "torch" else "ndarray", "shape": list(v.shape),
                "dtype": str(v.dtype), "first": [_short(x) for x in first]}
    if isinstance(v, str):
        return {"type": "str", "length": len(v), "first": v[:200]}
    if isinstance(v, dict):
        keys = list(v)[:10]
        return {"type": "dict", "keys": [str(k)[:60] for k in keys], "size": len(v),
                "first": {str(k)[:60]: _short(v[k]) for k in keys[:5]}}
    if isinstance(v, list | tuple):
        return {"type": "list", "length": len(v), "first": [_short(x) for x in v[:5]]}
    if v is None or isinstance(v, bool | int | float):
        return {"type": type(v).__name__, "value": v if not isinstance(v, float) or math.isfinite(v) else str(v)}
    return {"type": type(v).__name__}


def _short(x: Any) -> Any:
    """A scalar as is; anything else as a short tag (never ``repr``: nested values can be huge)."""
    if isinstance(x, float):
        return round(x, 6) if math.isfinite(x) else str(x)
    if isinstance(x, bool | int) or x is None:
        return x
    if isinstance(x, str):
        return x[:80]
    if isinstance(x, list | tuple | dict):
        return f"<{type(x).__name__} of {len(x)}>"
    if _array_kind(x) is not None:
        return f"<{type(x).__name__} {list(getattr(x, 'shape', []))}>"
    return f"<{type(x).__name__}>"
