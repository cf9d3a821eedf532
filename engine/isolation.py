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
from engine.results import load_value, save_value
from engine.spec import AgentSpec, RunContext

POLL_S = 0.02


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
) -> dict[str, Any]:
    """Run ``spec``'s agent in a child process; fills ``stats`` (peak_rss_mb, cpu_s, pid).

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
        "time_scale": ctx.time_scale, "stop_in": stop_in, "scratch": str(scratch),
    }
    mp = _context()
    recv, send = mp.Pipe(duplex=False)
    proc = mp.Process(target=child_main, args=(json.dumps(job), send), name=f"sg-node-{ctx.node_id}", daemon=True)
    proc.start()
    send.close()
    stats["pid"] = proc.pid
    try:
        return _supervise(proc, recv, ctx, scratch, stats)
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(timeout=5)
        recv.close()
        shutil.rmtree(scratch, ignore_errors=True)


def _supervise(proc: Any, recv: Any, ctx: RunContext, scratch: Path, stats: dict[str, Any]) -> dict[str, Any]:
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
                stats.update(peak_rss_mb=msg.get("peak_rss_mb"), cpu_s=msg.get("cpu_s"))
                if msg["type"] == "result":
                    ctx.items_processed = msg.get("items", ctx.items_processed)
                    return load_value(scratch / "out")
                raise IsolatedProcessError(msg["message"], error_type=msg["error_type"], tb=msg["traceback"])
        if ctx.cancel_event.is_set():
            proc.kill()
            raise RunCancelledError(f"node {ctx.node_id!r} was cancelled; its process was killed")
        if ctx.deadline is not None and time.monotonic() > ctx.deadline:
            proc.kill()
            raise AgentTimeoutError(f"node {ctx.node_id!r} ran past its timeout; its process was killed")
        if not proc.is_alive() and not recv.poll(0):
            proc.join(timeout=1)
            raise _died(ctx, proc.exitcode)


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
            stop_at=stop_at, on_progress=_forward_progress(send), on_log=lambda m: send({"type": "log", "message": m}),
        )
        agent = spec.build(params)
        agent.load(job["device"])
        outputs = agent.run(load_value(scratch / "in"), ctx)
        save_value(scratch / "out", outputs)
        send({"type": "result", "items": ctx.items_processed, **usage()})
    except BaseException as exc:
        send({"type": "error", "error_type": type(exc).__name__, "message": str(exc),
              "traceback": traceback.format_exc(), **usage()})
    finally:
        conn.close()


def _forward_progress(send: Callable[[dict[str, Any]], None]) -> Callable[[int, int | None], None]:
    return lambda done, total: send({"type": "progress", "done": done, "total": total})
