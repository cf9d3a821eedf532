"""The Ray worker side of the Ray backend: run one attempt of one node inside a Ray worker process.

Agents are built here from the worker's own registry by name (code is never shipped from the
driver or a browser); models stay warm in a small per-process cache keyed by agent name, version,
params and device. Errors are caught and reported as data, so the driver decides about retries.
``ray`` is imported lazily, only to read the Ray node id and the GPU ids of this worker.
"""

from __future__ import annotations

import os
import resource
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from engine.errors import AgentExecutionError, AgentTimeoutError, RunCancelledError
from engine.spec import Agent, AgentSpec, Lifecycle, RunContext

if TYPE_CHECKING:
    from engine.registry import Registry

CACHE_ENV = "SERVICEGRID_RAY_MODEL_CACHE"  # models kept warm per worker process (0: none)
_DEFAULT_CACHE = 2
_cache: OrderedDict[tuple[str, str, str, str], Agent] = OrderedDict()
_cache_lock = threading.Lock()
_registries: dict[str, Registry] = {}  # worker-local registries by agent module
_lifecycles: dict[str, Lifecycle] = {}
_node_id: str | None = None


class AttemptFailed(Exception):
    """Raised by a plain node task whose attempt did not succeed, so its outputs hold an error (the
    descendants submitted ahead of time do not run) while the driver still gets the report."""

    def __init__(self, report: dict[str, Any]) -> None:
        super().__init__(str(report.get("error", {}).get("message", report.get("status", ""))))
        self.report = report

    def __reduce__(self) -> tuple[Any, ...]:
        return (AttemptFailed, (self.report,))


def _cache_size() -> int:
    try:
        return max(0, int(os.environ.get(CACHE_ENV, _DEFAULT_CACHE)))
    except ValueError:
        return _DEFAULT_CACHE


def find_spec(name: str, module: str | None) -> AgentSpec:
    """The spec of agent ``name`` in this worker: from its defining module when the driver names
    one (cheap: the worker imports only that module), else from the default registry."""
    from engine.registry import Registry, default_registry

    if module:
        with _cache_lock:
            registry = _registries.get(module)
        if registry is None:
            registry = Registry()
            try:
                registry.register_module(module)
            except ImportError:
                registry = default_registry()
            with _cache_lock:
                _registries[module] = registry
        if name in registry:
            return registry.get(name)
    return default_registry().get(name)


def checkout_agent(name: str, params: dict[str, Any], device: str,
                   module: str | None = None) -> tuple[Agent, bool]:
    """A loaded agent for (name, params, device): from this worker's cache when warm, else built.

    Returns the agent and whether it is cached (cached agents are returned by ``checkin``).
    """
    import json

    spec = find_spec(name, module)
    key = (spec.name, spec.version, json.dumps(params, sort_keys=True, default=str), device)
    with _cache_lock:
        agent = _cache.pop(key, None)
    if agent is None:
        agent = spec.build(spec.parse_params(params))
        agent.load(device)
    return agent, _worth_caching(agent)


def checkin_agent(name: str, params: dict[str, Any], device: str, agent: Agent) -> None:
    """Keep a loaded agent warm for the next task in this worker (least recently used goes first)."""
    import json

    size = _cache_size()
    if size == 0:
        agent.unload()
        return
    key = (name, agent.spec.version, json.dumps(params, sort_keys=True, default=str), device)
    with _cache_lock:
        _cache[key] = agent
        _cache.move_to_end(key)
        evicted = [_cache.popitem(last=False)[1] for _ in range(max(0, len(_cache) - size))]
    for old in evicted:
        old.unload()


def _worth_caching(agent: Agent) -> bool:
    """Only agents that override ``load`` (real models) are kept; simulated ones are cheap to build."""
    return type(agent).load is not Agent.load and not agent.spec.simulated


def _where(gpu: bool) -> tuple[str, list[int]]:
    """This worker's Ray node id (read once per process) and, for GPU tasks, its GPU ids."""
    global _node_id
    import ray

    if _node_id is None:
        _node_id = ray.get_runtime_context().get_node_id()
    return _node_id, (list(ray.get_gpu_ids()) if gpu else [])


def _lifecycle(data: dict[str, Any]) -> Lifecycle:
    """The node's lifecycle rules (parsed once per distinct rules in this worker)."""
    import json

    key = json.dumps(data, sort_keys=True)
    rules = _lifecycles.get(key)
    if rules is None:
        rules = _lifecycles[key] = Lifecycle.model_validate(data)
    return rules


def _gather_inputs(links: list[list[Any]], upstream: tuple[Any, ...]) -> dict[str, Any]:
    """Inputs by port from upstream outputs; ``links`` are (target port, source port, arg index, multiple)."""
    inputs: dict[str, Any] = {}
    for target_port, source_port, index, multiple in links:
        out = upstream[index]
        value = out.get(source_port) if isinstance(out, dict) else out
        if multiple:
            inputs.setdefault(target_port, []).append(value)
        else:
            inputs[target_port] = value
    return inputs


def _device(job: dict[str, Any], gpu_ids: list[int]) -> str:
    return "cuda:0" if job["gpu"] and gpu_ids else "cpu"  # Ray sets CUDA_VISIBLE_DEVICES


def _start_info(job: dict[str, Any]) -> dict[str, Any]:
    find_spec(job["agent"], job.get("module"))  # imports the agent's module before the clock starts
    node_id, gpu_ids = _where(job["gpu"])
    return {"ray_node_id": node_id, "ray_worker_pid": os.getpid(), "started_at": time.time(),
            "device": _device(job, gpu_ids), "gpu_ids": gpu_ids}


def _attempt(job: dict[str, Any], start: dict[str, Any], upstream: tuple[Any, ...]) -> tuple[dict, Any]:
    """Run the agent once; returns (report, outputs). Never raises for an agent's error."""
    lifecycle = _lifecycle(job["lifecycle"])
    ex, stop = lifecycle.execution, lifecycle.exit
    now = time.monotonic()
    ctx = RunContext(node_id=job["node_id"], run_id=job["run_id"], device=start["device"],
                     threads=job["threads"], lifecycle=lifecycle, time_scale=job["time_scale"],
                     deadline=now + ex.timeout_s if ex.timeout_s else None,
                     stop_at=now + stop.time_limit_s if stop.time_limit_s else None,
                     attempt=job["attempt"])
    cpu0, wall0 = time.thread_time(), time.monotonic()
    report: dict[str, Any] = dict(start)
    outputs: Any = None
    try:
        outputs = _run_agent(job, ctx, upstream)
        if ctx.deadline is not None and time.monotonic() > ctx.deadline:
            raise AgentTimeoutError(f"node {job['node_id']!r} ran past its timeout")
        report["status"] = "done"
    except RunCancelledError:
        report["status"] = "cancelled"
    except Exception as exc:  # an agent's failure is data for the driver (retry or fail)
        report.update(status="error", error=describe_error(job, exc))
    report.update(node_id=job["node_id"], ended_at=time.time(), wall_s=time.monotonic() - wall0, cpu_s=time.thread_time() - cpu0,
                  peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  items=ctx.items_processed, logs=list(ctx.logs)[-50:], threads=ctx.threads)
    if report["status"] == "done":
        from engine.results import summarize_outputs

        report["output_summary"] = summarize_outputs(outputs if isinstance(outputs, dict) else {"out": outputs})
    return report, outputs


def _run_agent(job: dict[str, Any], ctx: RunContext, upstream: tuple[Any, ...]) -> Any:
    agent, keep = checkout_agent(job["agent"], job["params"], ctx.device, job.get("module"))
    try:
        if "torch" in __import__("sys").modules:
            import torch

            torch.set_num_threads(ctx.threads)
        outputs = agent.run(_gather_inputs(job["links"], upstream), ctx)
    except BaseException:
        agent.unload()
        raise
    if keep:
        checkin_agent(job["agent"], job["params"], ctx.device, agent)
    else:
        agent.unload()
    return outputs


def describe_error(job: dict[str, Any], exc: BaseException) -> dict[str, str]:
    """The error record of a failed attempt (type, message naming node and agent, traceback)."""
    node, name = job["node_id"], job["agent"]
    if isinstance(exc, AgentTimeoutError):
        limit = _lifecycle(job["lifecycle"]).execution.timeout_s
        return timeout_error(node, name, job["attempt"], limit)
    tb = "".join(traceback.format_exception(exc))
    return {"type": type(exc).__name__, "message": str(AgentExecutionError(node, name, exc)), "traceback": tb}


def timeout_error(node: str, agent: str, attempt: int, limit: float | None) -> dict[str, str]:
    """The same timeout record as the local executor's."""
    text = f" of {limit:g} s" if limit else ""
    return {"type": "AgentTimeoutError", "traceback": "",
            "message": f"node {node!r} (agent {agent!r}) timed out: ran past its timeout{text} "
                       f"on attempt {attempt}; raise lifecycle.execution.timeout_s or make it faster"}


def run_node(job: dict[str, Any], *upstream: Any) -> tuple[dict[str, Any], Any]:
    """Ray task body (two returns: the report for the driver, the outputs for the object store).

    An attempt that did not succeed raises AttemptFailed (carrying the report) instead.
    """
    report, outputs = _attempt(job, _start_info(job), upstream)
    if report["status"] != "done":
        raise AttemptFailed(report)
    return report, outputs


def run_node_live(job: dict[str, Any], *upstream: Any) -> Iterator[Any]:
    """Ray streaming-generator task body: yields the start record, then the report, then the outputs.

    Used for long or time-limited nodes, so the driver sees the start (and times out from it).
    """
    start = _start_info(job)
    yield start
    report, outputs = _attempt(job, start, upstream)
    yield report
    yield outputs
