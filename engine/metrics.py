"""Node metrics, the GPU memory probe and the system sampler thread (a few Hz).

Honest limits: ``cpu_s`` is the CPU time of the Python worker thread (torch intra-op threads are
not included); ``peak_rss_mb`` of an in-thread node is the peak RSS of the whole process while it
ran (sampled), exact per node only for isolated nodes (``ru_maxrss`` of the child);
``memory_mb`` is the node's own: how far the process's RSS rose above its level when the node
started (the latest reading then; read again at each progress report and sampler tick, and at its
end when it ran ``FRESH_READ_S`` or returned ``FRESH_READ_BYTES``), and at least the bytes its
outputs hold. It is a lower bound of the node's working memory in a warm
process: memory that earlier nodes freed and the allocator kept (``engine.memtune``) is reused
without raising RSS, and a peak between readings is missed; nodes running at the same time share
one count. (glibc's ``mallinfo2`` counts bytes in use exactly, but it walks every free chunk
with the heap locked: 25 ms a call in a fragmented server heap, so it is not used.) An isolated
node's is how far its own process grew from just before the agent loaded (what its memory
limit checks, ``engine.isolation``);
``peak_gpu_mb`` is the node's own: how far torch's per-process, per-device peak rose above what
was allocated on the device when the node started (tensors that earlier nodes, a cache or the
host program keep on the card do not count), exact only when nodes on one device do not overlap
(another node's start resets the peak, and their allocations share one count).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

log = logging.getLogger(__name__)


@dataclass
class NodeMetrics:
    """What one node cost. Times in seconds, memory in MB."""

    wait_inputs_s: float = 0.0
    wait_resource_s: float = 0.0
    wait_resource: dict[str, float] = field(default_factory=dict)
    paused_s: float = 0.0  # of wait_resource_s, the time its run was paused (RunManager.pause)
    queue_s: float = 0.0
    wall_s: float = 0.0
    cpu_s: float = 0.0  # Python-thread CPU (time.thread_time); torch intra-op threads excluded
    peak_rss_mb: float | None = None  # process-wide while it ran unless isolated
    memory_mb: float | None = None  # the node's own (module doc); isolated: its process's growth
    peak_gpu_mb: float | None = None
    items: int = 0
    attempts: int = 0
    device: str = ""
    threads: int = 1
    isolated: bool = False
    cold: bool = False  # the agent's first run in this process: its memory includes imports and model loads
    # only in the metrics of fused nodes (engine.fusion): what the node held, the head of its
    # chain (fused nodes) or the nodes fused into it (the head)
    held: dict[str, Any] | None = None
    fused_into: str | None = None
    chain: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dict(self.__dict__)  # flat and fast (dataclasses.asdict deep-copies: ~10x slower)
        data["wait_resource"] = dict(self.wait_resource)
        return data


class GpuProbe(Protocol):
    """Per-device GPU memory counters (fake it in tests)."""

    def task_start(self, device: str) -> None: ...
    def task_peak_mb(self, device: str) -> float | None: ...
    def sample_mb(self, device: str) -> float | None: ...
    def devices(self) -> list[str]: ...


class NullGpuProbe:
    """No GPU: every reading is None."""

    def task_start(self, device: str) -> None:
        return None

    def task_peak_mb(self, device: str) -> float | None:
        return None

    def sample_mb(self, device: str) -> float | None:
        return None

    def devices(self) -> list[str]:
        return []


class TorchGpuProbe:
    """torch.cuda counters. Per process and per device, not per thread (see module doc)."""

    def __init__(self) -> None:
        import torch

        self._torch = torch if torch.cuda.is_available() else None
        self._base: dict[str, int] = {}  # bytes allocated on the device at the last task start

    def task_start(self, device: str) -> None:
        if self._torch is not None and device.startswith("cuda"):
            self._base[device] = self._torch.cuda.memory_allocated(device)
            try:
                self._torch.cuda.reset_peak_memory_stats(device)
            except (AttributeError, RuntimeError):  # nothing allocated on it yet (its peak is 0), or a CPU-only build
                pass

    def task_peak_mb(self, device: str) -> float | None:
        if self._torch is None or not device.startswith("cuda"):
            return None
        return max(0, self._torch.cuda.max_memory_allocated(device) - self._base.get(device, 0)) / 2**20

    def sample_mb(self, device: str) -> float | None:
        if self._torch is None or not device.startswith("cuda"):
            return None
        return self._torch.cuda.memory_allocated(device) / 2**20

    def devices(self) -> list[str]:
        if self._torch is None:
            return []
        return [f"cuda:{i}" for i in range(self._torch.cuda.device_count())]


def default_gpu_probe(has_gpu: bool) -> GpuProbe:
    """The torch probe when the machine has a CUDA device (and torch is importable), else null."""
    if has_gpu:
        try:
            return TorchGpuProbe()
        except Exception:  # torch missing or broken: no GPU numbers, never a crash
            log.warning("GPU probe unavailable; GPU memory will not be measured")
    return NullGpuProbe()


def _statm() -> tuple[int, int] | None:
    try:
        return os.open("/proc/self/statm", os.O_RDONLY), os.sysconf("SC_PAGE_SIZE")
    except (OSError, AttributeError, ValueError):
        return None


_STATM = _statm()
_PROCESS: Any = None
_last_rss_mb = 0.0
FRESH_READ_S = 0.002  # a node that ran this long (or returned FRESH_READ_BYTES) gets a fresh end reading
FRESH_READ_BYTES = 2**20


def rss_now_mb() -> float:
    """The process's resident memory now, in MB: ``/proc/self/statm`` read through a file kept
    open (~2 us; psutil takes ~12 us), psutil where there is no such file. Every reading is kept
    for ``rss_last_mb``."""
    global _PROCESS, _last_rss_mb
    if _STATM is not None:
        fd, page = _STATM
        try:
            _last_rss_mb = mb = int(os.pread(fd, 128, 0).split()[1]) * page / 2**20
            return mb
        except (OSError, ValueError, IndexError):
            pass
    if _PROCESS is None:
        import psutil

        _PROCESS = psutil.Process(os.getpid())
    _last_rss_mb = mb = _PROCESS.memory_info().rss / 2**20
    return mb


def rss_last_mb() -> float:
    """The latest RSS reading anyone took (sampler ticks, node ends, progress reports), without a
    system call: where a node's memory count starts. Reading at every node's start cost the
    executor 3 us a node (18.8 -> 24.7 us on 10,000 no-op nodes); the latest reading is at most
    one node end or one sampler tick old while a run is active."""
    return _last_rss_mb or rss_now_mb()


def memory_growth_mb(base_mb: float | None, peak_mb: float, output_bytes: int) -> float | None:
    """An in-thread node's own memory: how far the process's RSS rose above its level when the
    node started (``peak_mb``: the highest reading while it ran), and at least what its outputs
    hold. None when it never started."""
    if base_mb is None:
        return None
    return max(0.0, peak_mb - base_mb, output_bytes / 2**20)


def own_memory_mb(metrics: Mapping[str, Any], peak_rss_mb: float | None) -> float | None:
    """A finished node's own memory from what was recorded: ``metrics["memory_mb"]`` (None for a
    node fused into a chain: its chain's first node has it). Runs recorded before that existed
    have only ``peak_rss_mb``, the whole process's RSS while the node ran, which is the node's own
    only when it ran isolated."""
    if "memory_mb" in metrics:
        return metrics["memory_mb"]
    return peak_rss_mb if metrics.get("isolated") else None


@dataclass(frozen=True)
class Sample:
    """One reading of the process: CPU %, RSS, per-thread CPU % (by native id), GPU MB."""

    time: float
    cpu_percent: float
    rss_mb: float
    thread_cpu_percent: dict[int, float]
    gpu_memory_mb: dict[str, float]


class Sampler:
    """A daemon thread sampling the process at ``hz`` while ``active()`` is true; calls
    ``on_sample``.

    Every sample is a rate over the interval since the previous reading, never a first reading
    on its own: ``prime()`` takes the baseline when runs start after an idle spell (the caller
    does it before the run's first node, so the reading does not compete with it), ``read()``
    returns None when there is no baseline yet, and the thread waits one period before its first
    sample. The owner takes a last sample when a run ends (``read()``), so a run shorter than a
    period still gets one. (Before: the first sample of every run said 0 % CPU, and a run
    shorter than a period had none.)

    A reading is cheap: the process's CPU time (``time.process_time``), RSS, GPU memory, and the
    CPU time of the threads ``threads()`` names (native ids; the executor's workers) from
    ``/proc/self/task/<id>/schedstat``, about 10 us each. psutil's list of every thread took
    ~0.5 ms with the GIL held at 32 threads, and it was taken just as a run's first batch began.
    Without schedstat (not Linux) per-thread times come from psutil.
    """

    def __init__(
        self,
        on_sample: Callable[[Sample], None],
        active: Callable[[], bool],
        gpu: GpuProbe | None = None,
        hz: float = 4.0,
        threads: Callable[[], Iterable[int]] | None = None,
    ) -> None:
        import psutil

        self._proc = psutil.Process(os.getpid())
        self._on_sample = on_sample
        self._active = active
        self._gpu = gpu or NullGpuProbe()
        self._threads = threads
        self.period = 1.0 / max(0.1, hz)
        self.last_rss_mb = self._rss_mb()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._prev: tuple[float, float, dict[int, tuple[float, float]]] | None = None
        self._thread = threading.Thread(target=self._loop, name="servicegrid-sampler", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """Start sampling (a run was submitted): the first sample comes a period later."""
        self._wake.set()

    def prime(self) -> None:
        """Take the baseline reading now: the next sample covers the time from here. Also
        refreshes ``last_rss_mb`` (what nodes that start before the first sample see)."""
        with self._lock:
            self._prev = self._reading()
        self.last_rss_mb = self._rss_mb()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout=2)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not self._active():
                self._wake.wait(1.0)
                self._wake.clear()
                continue
            if self._stop.wait(self.period) or not self._active():
                continue  # a run that ended meanwhile got its last sample from its owner
            try:
                sample = self.read()
                if sample is not None:
                    self._on_sample(sample)
            except Exception:  # a sampler glitch never stops runs
                log.exception("metric sampling failed")

    def read(self) -> Sample | None:
        """A sample over the interval since the previous reading (which this one replaces);
        None when there was none (this reading becomes the baseline)."""
        with self._lock:
            now, total, threads = reading = self._reading()
            prev, self._prev = self._prev, reading
        self.last_rss_mb = rss = self._rss_mb()
        if prev is None:
            return None
        t0, total0, threads0 = prev
        per_thread: dict[int, float] = {}
        for tid, (cpu, at) in threads.items():
            # each thread's rate over its own two reads: under a busy GIL the reads of one
            # reading can be tens of ms apart. A thread first read now started after the
            # previous reading: all its CPU time is new.
            cpu0, at0 = threads0.get(tid, (0.0, t0))
            per_thread[tid] = 100.0 * (cpu - cpu0) / max(1e-6, at - at0)
        gpu = {d: mb for d in self._gpu.devices() if (mb := self._gpu.sample_mb(d)) is not None}
        return Sample(time.time(), 100.0 * (total - total0) / max(1e-6, now - t0), rss, per_thread, gpu)

    def _rss_mb(self) -> float:
        return rss_now_mb()

    def _reading(self) -> tuple[float, float, dict[int, tuple[float, float]]]:
        threads = self._thread_seconds()
        return time.monotonic(), time.process_time(), threads

    def _thread_seconds(self) -> dict[int, tuple[float, float]]:
        """(CPU seconds, when read) of the threads ``threads()`` names (all without it)."""
        if self._threads is None:
            return self._psutil_threads(None)
        wanted = set(self._threads())
        out: dict[int, tuple[float, float]] = {}
        for tid in wanted:
            try:
                with open(f"/proc/self/task/{tid}/schedstat", "rb") as f:
                    out[tid] = (int(f.read().split()[0]) / 1e9, time.monotonic())
            except FileNotFoundError:  # the thread ended (or no schedstat: see below)
                continue
            except (OSError, ValueError, IndexError):
                break
        if len(out) < len(wanted) and not os.path.exists("/proc/self/schedstat"):
            return self._psutil_threads(wanted)
        return out

    def _psutil_threads(self, wanted: set[int] | None) -> dict[int, tuple[float, float]]:
        at = time.monotonic()
        return {t.id: (t.user_time + t.system_time, at) for t in self._proc.threads()
                if wanted is None or t.id in wanted}
