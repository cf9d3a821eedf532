"""Hard isolation: run one node in its own process (forkserver, never fork), killable at any time.

Inputs and outputs cross the boundary in the same safe format as cached results (JSON +
safetensors in a scratch folder); messages on the pipe are JSON bytes. The child reports its own
peak RSS (``ru_maxrss``) and CPU time, so an isolated node's memory number is its own.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import multiprocessing
import resource
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from engine.errors import AgentTimeoutError, RunCancelledError, ServiceGridError
from engine.faults import held_memory
from engine.results import load_value, save_value
from engine.spec import AgentSpec, RunContext

POLL_S = 0.02
MEMORY_CHECK_S = 0.05
MEMORY_TOLERANCE = 1.2  # an isolated node may use its declared memory_mb times this ...
MEMORY_SLACK_MB = 48.0  # ... plus this much (allocator and interpreter noise) before it is stopped


def memory_limit_mb(declared_mb: float) -> float | None:
    """The memory an isolated node may grow by before it is killed; None when it declares none."""
    return declared_mb * MEMORY_TOLERANCE + MEMORY_SLACK_MB if declared_mb > 0 else None


class IsolatedProcessError(ServiceGridError, RuntimeError):
    """The node's process died or reported an error (its type, message and traceback kept)."""

    def __init__(self, message: str, *, error_type: str = "IsolatedProcessError", tb: str = "") -> None:
        self.error_type = error_type
        self.remote_traceback = tb
        super().__init__(message)


def _context() -> multiprocessing.context.BaseContext:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def run_isolated(
    spec: AgentSpec,
    params: BaseModel,
    inputs: dict[str, Any],
    ctx: RunContext,
    scratch: Path,
    stats: dict[str, Any],
    declared_memory_mb: float = 0.0,
    hold_mb: float = 0.0,
) -> dict[str, Any]:
    """Run ``spec``'s agent in a child process; fills ``stats`` (peak_rss_mb, cpu_s, pid).

    The child's memory is watched: once it has grown (from just before the agent loads) past
    ``memory_limit_mb(declared_memory_mb)``, it is killed and the node fails with error type
    ``MemoryLimitExceeded`` — an agent that over-allocates cannot take the machine down.
    ``hold_mb``: a fault drill's extra memory, held in the child while the agent runs.

    Raises:
        AgentTimeoutError: past ``ctx.deadline`` (the child is killed).
        RunCancelledError: ``ctx`` was cancelled (the child is killed).
        IsolatedProcessError: the agent raised in the child, or the child died.
    """
    factory = spec.factory
    if factory is None or "<locals>" in getattr(factory, "__qualname__", "<locals>"):
        raise IsolatedProcessError(f"agent {spec.name!r} is not importable by module path; it cannot be isolated")
    save_value(scratch / "in", inputs)
    stop_in = None if ctx.stop_at is None else max(0.0, ctx.stop_at - time.monotonic())
    job = {
        "module": factory.__module__, "qualname": factory.__qualname__,
        "params": params.model_dump(mode="json"), "node_id": ctx.node_id, "run_id": ctx.run_id,
        "device": ctx.device, "threads": ctx.threads, "lifecycle": ctx.lifecycle.model_dump(mode="json"),
        "time_scale": ctx.time_scale, "stop_in": stop_in, "scratch": str(scratch), "attempt": ctx.attempt,
        "hold_mb": hold_mb,
    }
    mp = _context()
    recv, send = mp.Pipe(duplex=False)
    proc = mp.Process(target=child_main, args=(json.dumps(job), send), name=f"sg-node-{ctx.node_id}", daemon=True)
    proc.start()
    send.close()
    stats["pid"] = proc.pid
    try:
        return _supervise(proc, recv, ctx, scratch, stats, memory_limit_mb(declared_memory_mb))
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=5)
        recv.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _supervise(proc: Any, recv: Any, ctx: RunContext, scratch: Path, stats: dict[str, Any],
               limit_mb: float | None) -> dict[str, Any]:
    watch = _MemoryWatch(proc.pid, limit_mb)
    while True:
        if recv.poll(POLL_S):
            try:
                msg = json.loads(recv.recv_bytes())
            except EOFError:  # the child closed its end without a result: it died
                proc.join(timeout=5)
                raise _died(ctx, proc.exitcode) from None
            if msg is not None:
                if msg["type"] == "progress":
                    ctx.progress(msg["done"], msg.get("total"))
                    continue
                if msg["type"] == "log":
                    ctx.log(msg["message"])
                    continue
                if msg["type"] == "baseline":
                    watch.baseline_mb = msg["rss_mb"]
                    continue
                stats.update(peak_rss_mb=msg.get("peak_rss_mb"), cpu_s=msg.get("cpu_s"),
                             memory_mb=watch.grown_to(msg.get("peak_rss_mb")))
                if msg["type"] == "result":
                    ctx.items_processed = msg.get("items", ctx.items_processed)
                    return load_value(scratch / "out")
                raise IsolatedProcessError(msg["message"], error_type=msg["error_type"], tb=msg["traceback"])
        if ctx.cancel_event.is_set():
            proc.kill()
            raise RunCancelledError(f"node {ctx.node_id!r} was cancelled; its process was killed")
        if (grown := watch.over_limit()) is not None:
            proc.kill()
            stats.update(peak_rss_mb=watch.peak_mb, memory_mb=watch.grown_to(watch.peak_mb))
            raise IsolatedProcessError(
                f"node {ctx.node_id!r} grew by {grown:,.0f} MB, more than the {watch.limit_mb:,.0f} MB its "
                "declared memory allows; its process was killed. Raise the node's memory_mb or lower its "
                "batch size", error_type="MemoryLimitExceeded")
        if ctx.deadline is not None and time.monotonic() > ctx.deadline:
            proc.kill()
            raise AgentTimeoutError(f"node {ctx.node_id!r} ran past its timeout; its process was killed")
        if not proc.is_alive() and not recv.poll(0):
            proc.join(timeout=1)
            raise _died(ctx, proc.exitcode)


class _MemoryWatch:
    """Samples the child's RSS every MEMORY_CHECK_S once it reported its baseline."""

    def __init__(self, pid: int, limit_mb: float | None) -> None:
        self.limit_mb = limit_mb
        self.baseline_mb: float | None = None
        self.peak_mb: float | None = None
        self._next = 0.0
        self._proc: Any = None
        if limit_mb is not None:
            import psutil

            with contextlib.suppress(psutil.Error):
                self._proc = psutil.Process(pid)

    def grown_to(self, peak_mb: float | None) -> float | None:
        """The node's own memory: how far its process grew from its baseline (just before the
        agent loaded, after the interpreter and imports) to ``peak_mb``: what its declared memory
        and the kill limit are about. None without both readings."""
        if peak_mb is None or self.baseline_mb is None:
            return None
        return max(0.0, peak_mb - self.baseline_mb)

    def over_limit(self) -> float | None:
        """How much the child grew, when that is past the limit; else None."""
        if self._proc is None or self.baseline_mb is None or self.limit_mb is None:
            return None
        now = time.monotonic()
        if now < self._next:
            return None
        self._next = now + MEMORY_CHECK_S
        try:
            rss_mb = self._proc.memory_info().rss / 2**20
        except Exception:  # the child is gone; the exit path reports it
            return None
        self.peak_mb = max(self.peak_mb or 0.0, rss_mb)
        grown = rss_mb - self.baseline_mb
        return grown if grown > self.limit_mb else None


def _died(ctx: RunContext, exitcode: int | None) -> IsolatedProcessError:
    return IsolatedProcessError(
        f"the process of node {ctx.node_id!r} died ({_describe_exit(exitcode)}) "
        "before returning a result; check the agent for crashes or memory limits"
    )


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by signal {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def child_main(job_text: str, conn: Any) -> None:
    """Entry point of the node's process: build the agent, run it, report over ``conn``."""
    job = json.loads(job_text)
    scratch = Path(job["scratch"])

    def send(msg: dict[str, Any]) -> None:
        conn.send_bytes(json.dumps(msg, default=str).encode())

    def usage() -> dict[str, float]:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        scale = 1024 if sys.platform != "darwin" else 1  # ru_maxrss: KB on Linux, bytes on macOS
        return {"peak_rss_mb": ru.ru_maxrss * scale / 2**20, "cpu_s": ru.ru_utime + ru.ru_stime}

    try:
        from engine.spec import Lifecycle

        module = importlib.import_module(job["module"])
        cls: Any = module
        for part in job["qualname"].split("."):
            cls = getattr(cls, part)
        spec: AgentSpec = cls.spec
        params = spec.parse_params(job["params"])
        stop_at = None if job["stop_in"] is None else time.monotonic() + job["stop_in"]
        ctx = RunContext(
            node_id=job["node_id"], run_id=job["run_id"], device=job["device"], threads=job["threads"],
            lifecycle=Lifecycle.model_validate(job["lifecycle"]), time_scale=job["time_scale"],
            attempt=job["attempt"], stop_at=stop_at, on_progress=_forward_progress(send), on_log=lambda m: send({"type": "log", "message": m}),
        )
        agent = spec.build(params)
        send({"type": "baseline", "rss_mb": _rss_mb()})
        held = held_memory(float(job.get("hold_mb") or 0.0))  # a fault drill's, counted as the node's
        agent.load(job["device"])
        outputs = agent.run(load_value(scratch / "in"), ctx)
        del held
        save_value(scratch / "out", outputs)
        send({"type": "result", "items": ctx.items_processed, **usage()})
    except BaseException as exc:
        send({"type": "error", "error_type": type(exc).__name__, "message": str(exc),
              "traceback": traceback.format_exc(), **usage()})
    finally:
        conn.close()


def _rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def _forward_progress(send: Callable[[dict[str, Any]], None]) -> Callable[[int, int | None], None]:
    return lambda done, total: send({"type": "progress", "done": done, "total": total})
