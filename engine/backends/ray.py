"""The Ray backend: run whole workflows on a Ray cluster (a local one, or a running one by address).

It connects to Ray, reads the cluster's capacity (whole and per node), turns each node's demand
into Ray task options, and hands the run to ``RayRun``. This is the only module that imports
``ray``, and only when a RayBackend is built (``pip install servicegrid[ray]``).
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from collections.abc import Callable
from typing import Any

from engine.backends.ray_nodes import RayNode, RunSettings, build_nodes, unplaceable
from engine.backends.ray_run import Gate, RayRun
from engine.backends.ray_worker import CancelBoard, run_node, run_node_live
from engine.components import expand_components
from engine.errors import AmendError, ServiceGridError
from engine.events import Event, RunStatus
from engine.issues import Issue, IssueCode
from engine.registry import Registry
from engine.resources import Capacity, GpuDevice
from engine.versions import runnable
from engine.workflow import Workflow

ADDRESS_ENV = "SERVICEGRID_RAY_ADDRESS"
RUNTIME_ENV_ENV = "SERVICEGRID_RAY_RUNTIME_ENV"  # JSON runtime_env for remote clusters
GPU_MEMORY_ENV = "SERVICEGRID_RAY_GPU_MEMORY_MB"  # per-GPU memory when Ray cannot tell
DEFAULT_GPU_MEMORY_MB = 16_384.0  # documented assumption for an unknown accelerator
_RAY_OWN = {"CPU", "GPU", "memory", "object_store_memory"}
# Memory of common accelerators, by Ray's accelerator_type (the smaller variant where there are two).
ACCELERATOR_MEMORY_MB = {
    "H200": 141 * 1024, "H100": 80 * 1024, "A100": 40 * 1024, "A100-80G": 80 * 1024,
    "A100-40G": 40 * 1024, "L40S": 48 * 1024, "L40": 48 * 1024, "L4": 24 * 1024, "A10G": 24 * 1024,
    "A10": 24 * 1024, "T4": 16 * 1024, "V100": 16 * 1024, "P100": 16 * 1024, "RTX": 24 * 1024,
}


class RayUnavailableError(ServiceGridError, ImportError):
    """Ray is not installed, or the cluster cannot be reached."""


def import_ray() -> Any:
    """The ``ray`` module, or RayUnavailableError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise RayUnavailableError(
            "the Ray backend needs Ray, which is not installed; install it with "
            "`pip install 'servicegrid[ray]'` (or choose the local backend)") from None
    return ray


class RayBackend:
    """Runs workflows on Ray: each node is a Ray task with its demand as Ray resources."""

    name = "ray"

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 resources: dict[str, float] | None = None, namespace: str = "servicegrid") -> None:
        self.ray = ray = import_ray()
        address = address if address is not None else os.environ.get(ADDRESS_ENV) or None
        self._owned = False
        self._remotes: dict[tuple[Any, ...], Any] = {}
        self._board: tuple[Any, list[str]] | None = None
        self._drivers: dict[str, RayRun] = {}  # the runs under way, by id (what waits at a node: ``inputs``)
        self._task = ray.remote(max_retries=0, num_returns=2)(run_node)
        self._live = ray.remote(max_retries=0)(run_node_live)
        if not ray.is_initialized():  # else the caller (or a test) connected this process: leave it alone
            self._connect(address, num_cpus, resources, namespace)
        self._cancel_board()  # started now, so it is up when the first run needs it

    def _connect(self, address: str | None, num_cpus: int | None, resources: dict[str, float] | None,
                 namespace: str) -> None:
        ray = self.ray
        try:
            if address in (None, "", "local"):
                ray.init(num_cpus=num_cpus, resources=resources, namespace=namespace,
                         include_dashboard=False, log_to_driver=False)
            else:
                ray.init(address=address, namespace=namespace, runtime_env=_runtime_env(),
                         log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise RayUnavailableError(
                f"cannot connect to the Ray cluster at {address or 'a new local instance'!r}: {exc}; "
                f"check {ADDRESS_ENV} (e.g. `auto` or `ray://head:10001`) and that `ray status` "
                "works there") from None
        self._owned = True

    def _cancel_board(self) -> tuple[Any, list[str]]:
        """The actor that carries cancel requests to the workers (created once, owned by this
        driver, so it ends with it), and its [name, namespace] for the workers to find it."""
        if self._board is None:
            name = f"servicegrid-cancel-{uuid.uuid4().hex[:12]}"
            namespace = self.ray.get_runtime_context().namespace
            handle = self.ray.remote(num_cpus=0, max_restarts=-1)(CancelBoard).options(
                name=name, namespace=namespace).remote()
            self._board = (handle, [name, namespace])
        return self._board

    # -- capacity ---------------------------------------------------------------------------
    def capacity(self) -> Capacity:
        """The whole cluster: CPUs, memory, GPUs (one GpuDevice each) and custom resources."""
        return _capacity_of(self.ray.cluster_resources(), _gpu_memory_mb(self._alive_nodes()))

    def node_capacities(self) -> list[Capacity]:
        """One Capacity per alive Ray node (a demand must fit on one node to run)."""
        return [_capacity_of(n["Resources"], _gpu_memory_mb([n])) for n in self._alive_nodes()]

    def _alive_nodes(self) -> list[dict[str, Any]]:
        return [n for n in self.ray.nodes() if n.get("Alive", n.get("alive"))]

    # -- execution --------------------------------------------------------------------------
    def execute(self, run_id: str, workflow: Workflow, registry: Registry, emit: Callable[[Event], None],
                cancel_event: threading.Event, *, time_scale: float = 1.0, fail_fast: bool = False,
                cancel_node: Callable[[], set[str]] | None = None,
                pins: Callable[[str], dict[str, Any]] | None = None, gate: Gate | None = None,
                on_break: Callable[[str, str | None], Any] | None = None,
                on_fail: Callable[[str, str], Any] | None = None,
                ) -> tuple[RunStatus, dict[str, dict[str, Any]]]:
        """Run ``workflow`` on Ray; emits node events and RunFinished (not RunStarted).

        ``pins`` reads a pinned node's outputs by its pin's key (the driver's result cache): they
        are put in Ray's object store, and the nodes that only feed pinned ones are not run.
        ``gate`` pauses the run: while it is closed, ready nodes are not handed to Ray (``Gate``);
        ``on_break(node, why)`` pauses it at a node's breakpoint (``why``: what its condition found; else the gate is closed directly).
        ``on_fail(node, why)``: pause on failure, a failed node is held (what follows it waits) and this pauses the run.
        Returns the run status and the outputs of every finished node, by node id and port.
        Components are expanded first (``engine.components.flatten``): their nodes run as tasks of their own.
        """
        workflow = runnable(workflow, registry)
        nodes_caps = self.node_capacities()
        gpu_mb = _smallest_gpu_mb(nodes_caps)
        nodes = build_nodes(workflow, registry, gpu_mb, time_scale)
        infeasible = {n.id: msg for n in nodes.values() if (msg := unplaceable(n, nodes_caps))}
        settings = RunSettings(run_id=run_id, time_scale=time_scale, fail_fast=fail_fast)
        driver = RayRun(self.ray, self._remote_for, nodes, settings, emit, cancel_event, cancel_node,
                        self._cancel_board(), gate, on_break, on_fail)
        if any(n.pin is not None for n in workflow.nodes):
            from engine.workflow import pinned_only_feeders

            driver.pin({n.id: n.pin.key for n in workflow.nodes if n.pin is not None},
                       pinned_only_feeders(workflow), pins or _no_cache)
        self._drivers[run_id] = driver
        try:
            return driver.run(infeasible)
        finally:
            self._drivers.pop(run_id, None)

    def inputs(self, run_id: str, node_id: str) -> dict[str, Any] | None:
        """What node ``node_id`` of run ``run_id`` under way starts (or started) with, read from the
        object store (its finished parents' outputs); None when the run is not under way here."""
        driver = self._drivers.get(run_id)
        return driver.inputs_of(node_id) if driver is not None else None

    def amend(self, run_id: str, workflow: Workflow, registry: Registry, changed: dict[str, bool | None],
              time_scale: float = 1.0) -> None:
        """Edit and continue on Ray: the nodes of run ``run_id`` named in ``changed`` (node -> its
        breakpoint turned on, off, or None) take their settings in ``workflow``, the run's workflow
        with them changed (``RayRun.amend``). Raises AmendError when the run is not under way here
        or a node was handed to Ray already."""
        driver = self._drivers.get(run_id)
        if driver is None:
            raise AmendError(f"run {run_id} is not under way on Ray here: nothing to change")
        caps = self.node_capacities()
        gpu_mb = _smallest_gpu_mb(caps)
        driver.amend(build_nodes(runnable(workflow, registry), registry, gpu_mb, time_scale), changed)

    def retry(self, run_id: str, node_id: str) -> bool:
        """Put a failed node the run holds (pause on failure) back with the ready nodes (``RayRun.retry``)."""
        driver = self._drivers.get(run_id)
        return driver.retry(node_id) if driver is not None else False

    def validate(self, workflow: Workflow, registry: Registry) -> list[Issue]:
        """``capacity_exceeded`` for each node whose demand no single Ray node can meet."""
        caps = self.node_capacities()
        gpu_mb = _smallest_gpu_mb(caps)
        try:
            nodes = build_nodes(expand_components(workflow)[0], registry, gpu_mb, 1.0)
        except (ServiceGridError, ValueError):
            return []  # unknown agents and bad parameters are the core validation's findings
        issues = []
        for node in nodes.values():
            message = unplaceable(node, caps)
            if message:
                issues.append(Issue(IssueCode.CAPACITY_EXCEEDED.value, message, node.id,
                                    hint="lower the node's `resources`, or run on a cluster with a larger node"))
        return issues

    def _remote_for(self, node: RayNode) -> Any:
        opts = node.options
        key = (node.live, opts.get("num_cpus"), opts.get("num_gpus"), opts.get("memory"),
               tuple(sorted(opts.get("resources", {}).items())))
        remote = self._remotes.get(key)
        if remote is None:
            base = self._live if node.live else self._task
            remote = self._remotes[key] = base.options(**opts)
        return remote

    def shutdown(self) -> None:
        """Disconnect; a local Ray started by this backend stops with it."""
        if self._owned and self.ray.is_initialized():
            self.ray.shutdown()
        self._owned, self._board = False, None

    def close(self) -> None:
        self.shutdown()


def _no_cache(key: str) -> dict[str, Any]:
    raise LookupError("no result cache was given to read pinned outputs from")


def _smallest_gpu_mb(caps: list[Capacity]) -> float:
    """The memory of the smallest GPU of the Ray nodes ``caps`` (0: none), what a GPU share is
    reckoned against (``ray_nodes.task_options``)."""
    return min((g.memory_mb for c in caps for g in c.gpus or ()), default=0.0)


# -- capacity from Ray's resource dictionaries ------------------------------------------------
def _capacity_of(res: dict[str, float], gpu_memory_mb: float) -> Capacity:
    gpus = tuple(GpuDevice(index=i, name="Ray GPU", memory_mb=gpu_memory_mb)
                 for i in range(int(res.get("GPU", 0))))
    custom = {k: float(v) for k, v in res.items()
              if k not in _RAY_OWN and not k.startswith(("node:", "accelerator_type:"))}
    memory = res.get("memory", 0) / 2**20
    return Capacity(cpu=res.get("CPU") or None, memory_mb=memory or None, gpus=gpus, custom=custom)


def _gpu_memory_mb(nodes: list[dict[str, Any]]) -> float:
    """Per-GPU memory: $SERVICEGRID_RAY_GPU_MEMORY_MB, else by accelerator type, else the assumption."""
    if os.environ.get(GPU_MEMORY_ENV):
        return float(os.environ[GPU_MEMORY_ENV])
    sizes = []
    for node in nodes:
        labels = {**node.get("Labels", {}), **{k.split(":", 1)[1]: "" for k in node.get("Resources", {})
                                               if k.startswith("accelerator_type:")}}
        kinds = [labels.get("ray.io/accelerator-type")] + [k for k, v in labels.items() if v == ""]
        sizes += [ACCELERATOR_MEMORY_MB[k] for k in kinds if k in ACCELERATOR_MEMORY_MB]
    return float(min(sizes)) if sizes else DEFAULT_GPU_MEMORY_MB


def _runtime_env() -> dict[str, Any] | None:
    text = os.environ.get(RUNTIME_ENV_ENV)
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RayUnavailableError(f"{RUNTIME_ENV_ENV} is not valid JSON ({exc.msg}); write it like "
                                  '`{"pip": ["servicegrid[ray]"]}`') from None
    return value if isinstance(value, dict) else None
