"""Shared plumbing for torch-backed agents: device choice, intra-op threads, safe weight loading.

Payload conventions per data kind (what flows along edges):

- ``image_batch``: ``{"images": Tensor[N,C,H,W] float32 in 0..1, "ids": list[str],
  "labels": Tensor[N] | None (ground truth when known), "classes": list[str]}``
- ``text_batch``: ``{"texts": list[str], "ids": list[str], "labels": list[str] | None}``
- ``embedding``: ``{"vectors": Tensor[N,D], "ids": list[str]}``
- ``table``: ``{"columns": {name: list | Tensor[N]}, "ids": list[str]}``
- ``scores``: ``{"scores": Tensor[N,K], "classes": list[str], "ids": list[str],
  "labels": ground truth (optional)}``
- ``labels``: ``{"labels": list[str], "ids": list[str], "confidence": list[float]}``
- ``tensor`` / ``any``: whatever the agent documents.

Torch is imported lazily so that listing agents stays cheap.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ModelFileError
from engine.spec import RunContext

# GPU memory, measured by bench/gpu/memory.py (an H200, torch 2.11): the first kernels a process
# runs allocate cuBLAS / cuDNN workspaces (32 MB, kept for the process). Every GPU agent's
# declaration (``AgentSpec.gpu_memory_fn``) holds them, so a node never counts on another's.
GPU_WORKSPACE_MB = 32.0


def fixed_gpu_memory(per_item_mb: float, weights_mb: float = 0.0) -> Any:
    """A ``gpu_memory_fn`` for an agent whose GPU memory does not depend on its parameters or
    images: the workspaces and its weights once, ``per_item_mb`` for each item of a batch."""
    return lambda _params, _images: (GPU_WORKSPACE_MB + weights_mb, per_item_mb)

if TYPE_CHECKING:
    import torch

WEIGHTS_DIR = Path(__file__).parent / "weights"
CARDS_DIR = Path(__file__).parent / "cards"
MAX_WEIGHTS_BYTES = 50 * 2**20
_threads_lock = threading.Lock()


def resolve_device(requested: str, ctx: RunContext | None = None) -> str:
    """``cuda:N`` when torch can use it, else ``cpu`` (and say so in the node's log)."""
    if requested.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            index = int(requested.partition(":")[2] or 0)
            if index < torch.cuda.device_count():
                return f"cuda:{index}"
        if ctx is not None:
            ctx.log_once(f"{requested} is not available here (no CUDA); running on the CPU instead")
        return "cpu"
    return "cpu"


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` intra-op threads.

    ``torch.set_num_threads`` is process-wide, so concurrent agents share one setting: the
    executor's CPU allotment decides ``n`` and the last writer wins until it leaves the block.
    Good enough for throughput on small machines; exact isolation needs a process per agent.
    (Torch reads the setting into a thread when the thread first uses it: threads made before
    the block keep their own; set it in the thread that computes.)

    The outermost ``openmp_scope`` of the thread releases its OpenMP thread team when it ends.
    """
    import torch

    n = max(1, n)
    with _threads_lock:
        previous = torch.get_num_threads()
        if previous != n:  # setting it resizes torch's own thread pool too: skip when unchanged
            torch.set_num_threads(n)
    try:
        with openmp_scope():
            if n > 1:
                _local.team = True
            yield
    finally:
        if previous != n:
            with _threads_lock:
                torch.set_num_threads(previous)


@contextlib.contextmanager
def openmp_scope() -> Iterator[None]:
    """A block after which the calling thread's OpenMP team is released (``release_openmp_team``)
    if a ``torch_threads(n > 1)`` block ran in it. Nested scopes release only at the outermost,
    so a node that runs many multi-threaded blocks keeps its team until it ends. (Torch code
    outside such blocks: the executor releases a worker's team whenever the worker goes idle.)"""
    depth = getattr(_local, "depth", 0)
    _local.depth = depth + 1
    try:
        yield
    finally:
        _local.depth = depth
        if depth == 0 and getattr(_local, "team", False):
            _local.team = False
            release_openmp_team()


_local = threading.local()
_OMP_PAUSE_SOFT = 1
_gomp: Any = None  # the process's libgomp once looked up; False when it has none


_helpers: dict[int, int] = {}  # native id of a thread lent to another -> the borrower's native id
_ever_lent: set[int] = set()  # every thread lent so far (while it lives): the sampler reads them all


def lend_thread(helper: int, owner: int) -> None:
    """Thread ``helper`` works for thread ``owner`` (native ids) until ``end_lend``: the sampler
    counts its CPU as the owner's node's (a node's batches on a batch pool, engine.agents.splits).
    OpenMP intra-op threads are not lent this way: the process's CPU includes them, no node's does."""
    _helpers[helper] = owner
    _ever_lent.add(helper)


def end_lend(helper: int) -> None:
    _helpers.pop(helper, None)


def lent_threads() -> dict[int, list[int]]:
    """Owner native id -> the native ids of the threads lent to it now."""
    out: dict[int, list[int]] = {}
    for helper, owner in list(_helpers.items()):  # one step under the GIL: no lock
        out.setdefault(owner, []).append(helper)
    return out


def helper_threads() -> list[int]:
    """Every live thread ever lent (idle ones too): a sampler that reads them all has each one's
    previous reading when it is lent again, so its CPU is counted from then, not from its start."""
    import os

    if os.path.isdir("/proc/self/task"):
        for tid in [t for t in list(_ever_lent) if not os.path.exists(f"/proc/self/task/{t}")]:
            _ever_lent.discard(tid)  # the thread ended
    return list(_ever_lent)


def release_openmp_team() -> bool:
    """Release the OpenMP thread team of the calling thread (``omp_pause_resource_all``), so
    that it no longer counts against the process's CPUs; its next parallel region starts a new
    team (~0.1 ms). True when released.

    Why: GNU OpenMP (the runtime of Linux torch wheels) keeps one team per thread that ever ran
    a parallel region, for as long as that thread lives, and once the threads of all teams
    outnumber the CPUs it stops spin-waiting at barriers in every team. The engine runs torch on
    long-lived worker threads, so a team left by one node made every later multi-threaded node
    (or the caller's own loop) wait in the kernel instead: measured on 2 CPUs, two torch threads
    on one CNN batch took 96-98 ms per 512 images in a thread while another thread's idle team
    lived, 75-80 ms once it was released (bench/agents_bench.py pipeline). Only libgomp is
    handled: its pause is per thread; other runtimes (LLVM, Intel) pause the whole process.
    """
    global _gomp
    if _gomp is None:
        if "torch" not in sys.modules:  # no torch yet, no team: look for libgomp once it is loaded
            return False
        _gomp = _find_gomp()
    if not _gomp:
        return False
    return _gomp.omp_pause_resource_all(_OMP_PAUSE_SOFT) == 0


def _find_gomp() -> Any:
    """The libgomp already loaded in this process (by torch), or False."""
    import ctypes
    import os

    if not hasattr(os, "RTLD_NOLOAD"):
        return False
    try:
        lib = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD)
        fn = lib.omp_pause_resource_all
    except (OSError, AttributeError):  # not loaded, or older than OpenMP 5.0
        return False
    fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
    return lib


def load_weights(name: str, device: str = "cpu") -> dict[str, torch.Tensor]:
    """Load ``weights/<name>.safetensors`` (no pickle), size-limited, onto ``device``."""
    from safetensors.torch import load_file

    path = WEIGHTS_DIR / f"{name}.safetensors"
    if not path.exists():
        raise ModelFileError(
            f"weights {path.name} are missing; run `python -m training.{name}` to produce them"
        )
    if path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise ModelFileError(f"weights {path.name} exceed {MAX_WEIGHTS_BYTES // 2**20} MB")
    try:
        return load_file(str(path), device=device)
    except Exception as exc:
        raise ModelFileError(f"weights {path.name} are corrupt or unreadable: {exc}") from None


def read_card(name: str) -> str | None:
    """The model card Markdown for ``name``, if present."""
    path = CARDS_DIR / f"{name}.md"
    return path.read_text(encoding="utf-8") if path.exists() else None


def batches(n: int, size: int | None) -> Iterator[slice]:
    """Slices of ``range(n)`` of at most ``size`` items (one slice when size is None)."""
    step = size or max(n, 1)
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


def ids_for(n: int, prefix: str = "item") -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def sklearn_data_file(name: str) -> Path:
    """A data file scikit-learn ships (``sklearn/datasets/data/<name>``), found without importing
    scikit-learn: ``sklearn.datasets`` takes 1-2 s to import, which a fresh server's first run
    paid inside a source declared at milliseconds. OSError where it is not there."""
    spec = importlib.util.find_spec("sklearn")
    if spec is None or not spec.submodule_search_locations:
        raise OSError("scikit-learn is not installed")
    path = Path(next(iter(spec.submodule_search_locations)), "datasets", "data", name)
    if not path.is_file():
        raise OSError(f"{path} is not there")
    return path
