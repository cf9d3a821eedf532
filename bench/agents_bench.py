"""Declared vs measured for the agents (the vision, tabular and decision agents on default-sized
inputs; every agent of the templates on the template's own data; time against size, of the model
agents alone and of every node of the templates through the engine at two sizes), and the
two-stage image pipeline benchmark (preprocess -> CNN, 512 images 3x64x64 in batches of 32)
against peers.

    python bench/agents_bench.py                 # every part on the CPU
    python bench/agents_bench.py --device cuda:0 # on a GPU (when one is lent)
    python bench/agents_bench.py --only templates --repeat 5
    python bench/agents_bench.py --only scale --repeat 2
    python bench/agents_bench.py --only pipeline --repeat 3

Memory: "peak RSS delta" is the process's resident set sampled every millisecond during the run
minus before it (includes allocator slack; other threads' allocations would count too); on CUDA
it is torch.cuda.max_memory_allocated (tensor bytes only). Ratios, not absolute times, are the
targets: the machine is shared.
"""

from __future__ import annotations

import argparse
import copy
import functools
import importlib.util
import json
import os
import queue
import resource
import statistics
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import torch

from engine.agents import vision_ops as ops
from engine.agents.nets import cnn_for
from engine.agents.runtime import torch_threads
from engine.kinds import DataKind
from engine.registry import Registry
from engine.resources import ResourceDemand
from engine.spec import Agent, AgentSpec, PortSpec, RunContext

REGISTRY = Registry()
for _module in ("engine.agents.vision", "engine.agents.tabular", "engine.agents.text"):
    REGISTRY.register_module(_module)


class PeakRss:
    """Samples this process's RSS in a thread; ``delta_mb`` is the peak minus the start."""

    def __init__(self, device: str) -> None:
        self.device, self.proc = device, psutil.Process()
        self.peak = self.start = 0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.start_cuda = torch.cuda.memory_allocated()
        self.start = self.peak = self.proc.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)
        if self.device.startswith("cuda"):
            torch.cuda.synchronize()
            self.cuda_mb = (torch.cuda.max_memory_allocated() - self.start_cuda) / 2**20

    @property
    def delta_mb(self) -> float:
        return (self.peak - self.start) / 2**20


def _make(name: str, **params: Any) -> Any:
    spec = REGISTRY.get(name)
    agent = spec.build(spec.parse_params(params))
    agent.load("cpu")
    return agent


def _inputs() -> dict[str, dict[str, Any]]:
    """Default-sized inputs for every agent (the upstream agents' default outputs)."""
    ctx = RunContext()
    images = _make("vision.source").run({}, ctx)["images"]
    tables = {d: _make("tabular.source", dataset=d).run({}, ctx)["table"]
              for d in ("credit_applicants", "transactions", "breast_cancer", "market")}
    credit = _make("tabular.credit_score").run({"table": tables["credit_applicants"]}, ctx)["scores"]
    fraud = _make("tabular.fraud_score").run({"table": tables["transactions"]}, ctx)["scores"]
    market = _make("tabular.market_signal").run({"table": tables["market"]}, ctx)["scores"]
    risk = _make("decision.risk_aggregate").run({"scores": [credit, fraud, market]}, ctx)["scores"]
    return {
        "vision.source": {}, "tabular.source": {},
        "vision.preprocess": {"images": images}, "vision.classify": {"images": images},
        "vision.explain": {"images": images}, "vision.embed": {"images": images},
        "tabular.credit_score": {"table": tables["credit_applicants"]},
        "tabular.fraud_score": {"table": tables["transactions"]},
        "tabular.diagnose": {"table": tables["breast_cancer"]},
        "tabular.market_signal": {"table": tables["market"]},
        "decision.risk_aggregate": {"scores": [credit, fraud, market]},
        "decision.threshold": {"scores": risk},
    }


def _items(inputs: dict[str, Any], outputs: dict[str, Any]) -> int:
    for payload in list(inputs.values()) + list(outputs.values()):
        payload = payload[0] if isinstance(payload, list) else payload
        if isinstance(payload, dict) and "ids" in payload:
            return len(payload["ids"])
    return 1


def bench_agents(device: str, repeat: int) -> list[dict[str, Any]]:
    """Each agent at its default parameters on default-sized inputs (warm, best of ``repeat``)."""
    rows = []
    for name, inputs in _inputs().items():
        spec = REGISTRY.get(name)
        agent = spec.build(spec.parse_params({}))
        agent.load(device)
        ctx = RunContext(device=device, threads=max(1, round(spec.resources.cpu)), lifecycle=spec.lifecycle)
        agent.run(inputs, ctx)  # warm-up
        times, peaks, cuda = [], [], []
        for _ in range(repeat):
            with PeakRss(device) as mem:
                start = time.perf_counter()
                outputs = agent.run(inputs, RunContext(device=device, threads=ctx.threads, lifecycle=spec.lifecycle))
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            peaks.append(mem.delta_mb)
            cuda.append(getattr(mem, "cuda_mb", 0.0))
        n, best = _items(inputs, outputs), min(times)
        rows.append({"agent": name, "items": n, "run_s": best, "ms_per_item": 1000 * best / n,
                     "items_per_s": n / best, "peak_rss_delta_mb": max(peaks), "cuda_peak_mb": max(cuda),
                     "declared_s": spec.expected_duration(spec.parse_params({}), n if inputs else None),
                     "declared_memory_mb": spec.demand_for(None, spec.parse_params({}), n).memory_mb})
    return rows


# -- every agent of the templates ------------------------------------------------------------
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _custom_model_file(folder: Path) -> Path:
    """A TorchScript model for ``custom.model``: a linear layer over 64x64 grey images."""
    layer = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64 * 64, 2))
    path = folder / "bench_linear.pt"
    torch.jit.script(layer).save(str(path))
    return path


def template_nodes(data: dict[str, Any], registry: Any) -> tuple[Any, list[tuple[Any, AgentSpec]]] | None:
    """A template's workflow (its components expanded) and its nodes in run order with their
    agents; None for a template of simulated agents."""
    from engine.components import flatten
    from engine.graphs import topological_order
    from engine.workflow import Workflow

    wf = flatten(Workflow.model_validate(data))
    if any(registry.get(n.agent).simulated for n in wf.nodes):
        return None
    order = topological_order(wf.node_ids(), [(e.source, e.target) for e in wf.edges]) or []
    return wf, [(wf.node(i), registry.get(wf.node(i).agent)) for i in order]


def bench_templates(device: str, repeat: int) -> list[dict[str, Any]]:
    """Every node of every template (simulated ones aside) run directly in topological order on
    the template's own data, then timed warm on the same inputs (best of ``repeat``), once per
    agent; plus ``custom.model`` on the image pipeline's images. Sinks write into a temporary
    data folder."""
    import tempfile

    from engine.items import planned_items
    from engine.registry import default_registry

    registry = default_registry()
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    with tempfile.TemporaryDirectory() as tmp:
        old = os.environ.get("SERVICEGRID_DATA_DIR")
        os.environ["SERVICEGRID_DATA_DIR"] = tmp
        try:
            images: Any = None
            for path in sorted(EXAMPLES.glob("*.json")):
                found = template_nodes(json.loads(path.read_text()), registry)
                if found is None:
                    continue
                wf, nodes = found
                planned = planned_items(wf, registry)
                outputs: dict[str, dict[str, Any]] = {}
                for node, spec in nodes:
                    node_id = node.id
                    inputs = _node_inputs(wf, registry, node_id, outputs)
                    params = spec.parse_params(node.params)
                    lifecycle = spec.lifecycle.merged(node.lifecycle)
                    agent = spec.build(params)
                    agent.load(device)
                    threads = max(1, round(spec.resources.merged(node.resources).cpu))

                    ctx = functools.partial(RunContext, node_id=node_id, device=device, threads=threads,
                                            lifecycle=lifecycle)
                    outputs[node_id] = agent.run(inputs, ctx())
                    if images is None and spec.name == "vision.source":
                        images = outputs[node_id]["images"]
                    if spec.name in seen:
                        continue
                    seen.add(spec.name)
                    rows.append(_time_node(f"{path.stem}/{node_id}", spec, agent, inputs, ctx, device, repeat,
                                           planned.duration(node_id, spec, params),
                                           planned.demand(node_id, spec, params, node.resources).memory_mb))
            spec = registry.get("custom.model")
            params = spec.parse_params({"path": str(_custom_model_file(Path(tmp))), "input_kind": "image_batch",
                                        "classes": ["a", "b"]})
            agent = spec.build(params)
            agent.load(device)
            grey = {**images, "images": images["images"][:, :1]}
            n = len(images["ids"])
            rows.append(_time_node("image-pipeline images (linear TorchScript)", spec, agent, {"in": grey},
                                   lambda: RunContext(device=device), device, repeat,
                                   spec.expected_duration(params, n), spec.demand_for(None, params, n).memory_mb))
        finally:
            if old is None:
                os.environ.pop("SERVICEGRID_DATA_DIR", None)
            else:
                os.environ["SERVICEGRID_DATA_DIR"] = old
    return rows


def _node_inputs(wf: Any, registry: Any, node_id: str, outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A node's inputs by port from its parents' outputs (the executor's wiring, for the bench)."""
    spec = registry.get(wf.node(node_id).agent)
    inputs: dict[str, Any] = {}
    for e in wf.edges:
        if e.target != node_id:
            continue
        source = registry.get(wf.node(e.source).agent)
        port = spec.input(e.target_port or spec.inputs[0].name)
        value = outputs[e.source][e.source_port or source.outputs[0].name]
        if port is not None and port.multiple:
            inputs.setdefault(port.name, []).append(value)
        else:
            inputs[port.name if port is not None else "in"] = value
    return inputs


def _time_node(where: str, spec: AgentSpec, agent: Agent, inputs: dict[str, Any], ctx: Callable[[], RunContext],
               device: str, repeat: int, declared: float, declared_mb: float) -> dict[str, Any]:
    agent.run(inputs, ctx())  # warm
    times, peaks = [], []
    for _ in range(repeat):
        with PeakRss(device) as mem:
            start = time.perf_counter()
            outputs = agent.run(inputs, ctx())
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
        peaks.append(mem.delta_mb)
    n, best = _items(inputs, outputs), min(times)
    return {"agent": spec.name, "where": where, "items": n, "run_s": best, "ms_per_item": 1000 * best / n,
            "declared_s": declared, "peak_rss_delta_mb": max(peaks), "declared_memory_mb": declared_mb}


# -- time against size ------------------------------------------------------------------------
def _sized_inputs(name: str, n: int) -> dict[str, Any]:
    ctx = RunContext()
    if name.startswith("vision."):
        return {"images": _make("vision.source", n_items=n).run({}, ctx)["images"]}
    if name.startswith("text."):
        mode = "requests" if name == "text.intent" else "reviews"
        return {"texts": _make("text.source", mode=mode, n=n).run({}, ctx)["texts"]}
    dataset = {"tabular.credit_score": "credit_applicants", "tabular.fraud_score": "transactions",
               "tabular.diagnose": "breast_cancer"}[name]
    params = {"split": "all"} if dataset == "breast_cancer" else {"n_customers": max(n, 200)}
    return {"table": _make("tabular.source", dataset=dataset, n_items=n, **params).run({}, ctx)["table"]}


SIZES = {"tabular.diagnose": (142, 569)}  # the real table has 569 rows
# the model agents fed here; sources, flow utilities and the recommendation agents are measured
# through the engine in their templates at two sizes (``bench_scale``)
SIZED_FAMILIES = ("vision.", "text.intent", "text.sentiment", "text.embed", "text.entities",
                  "tabular.credit_score", "tabular.fraud_score", "tabular.diagnose")
DEFAULT_SIZES = (64, 512)


def bench_sizes(device: str, repeat: int) -> list[dict[str, Any]]:
    """Each agent that declares a time per item, at two sizes (its default lifecycle, warm, best
    of ``repeat``): the measured fixed part and time per item (a line through the two) next to
    the declared ones."""
    rows = []
    for spec in sorted((s for s in REGISTRY if s.per_item_s and s.name.startswith(SIZED_FAMILIES)),
                       key=lambda s: s.name):
        agent = spec.build(spec.parse_params({}))
        agent.load(device)
        threads = max(1, round(spec.resources.cpu))
        best = {}
        for n in SIZES.get(spec.name, DEFAULT_SIZES):
            inputs = _sized_inputs(spec.name, n)
            agent.run(inputs, RunContext(device=device, threads=threads, lifecycle=spec.lifecycle))
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                agent.run(inputs, RunContext(device=device, threads=threads, lifecycle=spec.lifecycle))
                if device.startswith("cuda"):
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - start)
            best[_items(inputs, {})] = min(times)
        (n1, t1), (n2, t2) = sorted(best.items())
        per_item = (t2 - t1) / (n2 - n1)
        rows.append({"agent": spec.name, "sizes": [n1, n2], "run_s": [t1, t2], "measured_per_item_ms": 1000 * per_item,
                     "measured_fixed_s": t1 - per_item * n1, "declared_per_item_ms": 1000 * spec.per_item_s,
                     "declared_fixed_s": spec.expected_duration_s, "declared_at_large_s": spec.expected_duration(
                         spec.parse_params({}), n2)})
    rows.append(_csv_row(repeat))
    return rows


def _csv_row(repeat: int, sizes: tuple[int, int] = (1_000, 20_000)) -> dict[str, Any]:
    """``tabular.csv`` reading generated transactions written as CSV files at two sizes (its
    declared time per row grows with the file's columns: ``per_item_fn``)."""
    import csv
    import tempfile

    from engine.agents.tabular_data import transactions_table

    spec = REGISTRY.get("tabular.csv")
    best, params = {}, None
    with tempfile.TemporaryDirectory() as folder:
        for n in sizes:
            table = transactions_table(n, 7, 200)
            path = Path(folder) / f"tx{n}.csv"
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.writer(fh)
                writer.writerow(["id", *table["columns"]])
                writer.writerows([i, *(v[k] for v in table["columns"].values())] for k, i in enumerate(table["ids"]))
            params = spec.parse_params({"path": str(path)})
            agent = spec.build(params)
            agent.run({}, RunContext())
            times = []
            for _ in range(repeat):
                start = time.perf_counter()
                agent.run({}, RunContext())
                times.append(time.perf_counter() - start)
            best[n] = min(times)
        (n1, t1), (n2, t2) = sorted(best.items())
        per_item = (t2 - t1) / (n2 - n1)
        return {"agent": spec.name, "sizes": [n1, n2], "run_s": [t1, t2], "measured_per_item_ms": 1000 * per_item,
                "measured_fixed_s": t1 - per_item * n1, "declared_per_item_ms": 1000 * spec.seconds_per_item(params),
                "declared_fixed_s": spec.expected_duration_s, "declared_at_large_s": spec.expected_duration(params)}


# -- time against image size ---------------------------------------------------------------------
PIXEL_SIDES = (64, 128, 256, 512)
PIXEL_ITEMS = 32
PIXEL_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("vision.preprocess", {"size": None}),
    ("vision.preprocess", {"size": None, "strength": 5.0}),
    ("vision.preprocess", {"size": None, "denoise": "median"}),
    ("vision.preprocess", {"size": None, "denoise": "median", "strength": 3.0}),
    ("vision.preprocess", {"size": None, "rotate_degrees": 30.0, "flip": True}),
    ("vision.classify", {}), ("vision.embed", {}), ("vision.explain", {}),
)


def bench_pixels(device: str, repeat: int) -> list[dict[str, Any]]:
    """The vision agents on images of 64-512 px, grey and RGB (32 items, one torch thread, warm,
    best of ``repeat``): measured time per item next to what the agent declares for that image
    size (``AgentSpec.per_image_fn``, the planned shapes as ``engine.items`` derives them)."""
    from engine.spec import ImageSizes

    rows = []
    for channels in (1, 3):
        for side in PIXEL_SIDES:
            images = _make("vision.source", n_items=PIXEL_ITEMS, size=side, channels=channels).run(
                {}, RunContext())["images"]
            for name, raw in PIXEL_VARIANTS:
                spec = REGISTRY.get(name)
                params = spec.parse_params(raw)
                agent = spec.build(params)
                agent.load(device)
                received = (channels, side, side)
                sizes = ImageSizes(received, spec.emitted_shape(params, received))

                def ctx(spec: AgentSpec = spec) -> RunContext:
                    return RunContext(device=device, threads=1, lifecycle=spec.lifecycle)

                agent.run({"images": images}, ctx())
                times = []
                for _ in range(repeat):
                    start = time.perf_counter()
                    agent.run({"images": images}, ctx())
                    if device.startswith("cuda"):
                        torch.cuda.synchronize()
                    times.append(time.perf_counter() - start)
                declared = spec.expected_duration(params, PIXEL_ITEMS, images=sizes) - spec.expected_duration(
                    params, 0, images=sizes)
                rows.append({"agent": name, "params": {k: v for k, v in raw.items() if k != "size"},
                             "channels": channels, "side": side, "ms_per_item": 1000 * min(times) / PIXEL_ITEMS,
                             "declared_ms_per_item": 1000 * declared / PIXEL_ITEMS,
                             "declared_mb_per_item": spec.image_cost(params, sizes)[1]})
    return rows


# -- templates at two sizes, through the engine ---------------------------------------------------
SCALES: dict[str, tuple[str, dict[str, Callable[[int], Any]], tuple[int, int]]] = {
    # template: (what grows, {node: params for size n}, (default size, 10x))
    "recommendation": ("users", {"behaviour": lambda n: {"n_users": n}}, (300, 3000)),
    "finance-risk": ("applicants (10 transactions each)",
                     {"applicants": lambda n: {"n_items": n, "n_customers": n},
                      "transactions": lambda n: {"n_items": 10 * n, "n_customers": n}}, (200, 2000)),
    "customer-service": ("requests", {"requests": lambda n: {"n": n}}, (60, 600)),
    "nlp-sentiment": ("reviews", {"reviews": lambda n: {"n": n}}, (90, 900)),
}


def bench_scale(device: str, repeat: int) -> list[dict[str, Any]]:
    """Every node of four templates (with the sources, flow utilities, decisions and the
    recommendation agents that ``bench_sizes`` does not feed), run through the engine (one warm
    ``RunManager``, cache off) at the template's size and ten times it: best wall time and the
    node's own memory (``engine.metrics``: a lower bound in a warm process) next to what the
    agent declares for the items planned for the node (``engine.items``)."""
    from engine.items import planned_items
    from engine.registry import default_registry
    from engine.runs import RunManager, RunOptions
    from engine.workflow import Workflow

    rows = []
    registry = default_registry()
    manager = RunManager(registry)
    try:
        for name, (what, grow, sizes) in SCALES.items():
            template = json.loads((EXAMPLES / f"{name}.json").read_text())
            for n in sizes:
                data = copy.deepcopy(template)
                for node in data["nodes"]:
                    if node["id"] in grow:
                        node["params"].update(grow[node["id"]](n))
                workflow = Workflow.model_validate(data)
                planned = planned_items(workflow, registry)
                wall: dict[str, float] = {}
                memory: dict[str, float] = {}
                for _ in range(repeat):
                    handle = manager.submit(workflow, RunOptions(use_cache=False, predict=False))
                    handle.wait(600)
                    for nid, view in handle.snapshot().nodes.items():
                        m = view["metrics"] or {}
                        if m.get("wall_s") is not None:
                            wall[nid] = min(wall.get(nid, float("inf")), m["wall_s"])
                        memory[nid] = max(memory.get(nid, 0.0), m.get("memory_mb") or 0.0)
                for node in workflow.nodes:
                    spec = registry.get(node.agent)
                    params = spec.parse_params(node.params)
                    items = planned.handled(node.id, spec)
                    rows.append({"template": name, "size": f"{n} {what}", "node": node.id, "agent": node.agent,
                                 "items": items, "run_s": wall.get(node.id, float("nan")),
                                 "declared_s": planned.duration(node.id, spec, params),
                                 "memory_mb": memory.get(node.id, float("nan")),
                                 "declared_memory_mb": planned.demand(node.id, spec, params, node.resources).memory_mb})
    finally:
        manager.shutdown()
    return rows


# -- the two-stage pipeline ----------------------------------------------------------------
N_IMAGES, BATCH = 512, 32
KEEP_OUTPUTS_MB = 64  # the engine's in-memory output budget: a server at its budget (see EngineRun)
WARM_RUNS_MAX, WARM_FAULTS = 20, 500  # EngineRun's warm-up


def _pipeline_images() -> torch.Tensor:
    return torch.rand(N_IMAGES, 3, 64, 64, generator=torch.Generator().manual_seed(0))


def _stages(device: str, infer: bool = False) -> tuple[Callable[[torch.Tensor], torch.Tensor],
                                                       Callable[[torch.Tensor], torch.Tensor]]:
    """The two stages as a person would write them: the model called as a module. ``infer``:
    the classify agent's inference path instead (``SmallCnn.infer``), for the reference row."""
    model, config = cnn_for("lesion_cnn", device)
    forward = model.infer if infer else model

    def preprocess(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            x = ops.denoise(ops.resize(x.to(device), 64), "gaussian", 1.0)
            return ops.normalise(x, "unit", 0.5, 0.25)

    def classify(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return forward(ops.to_channels(x, config.in_channels)).softmax(1).cpu()

    return preprocess, classify


def loop(images: torch.Tensor, device: str, threads: int, infer: bool = False) -> float:
    pre, cls = _stages(device, infer)
    with torch_threads(threads):
        start = time.perf_counter()
        for i in range(0, len(images), BATCH):
            cls(pre(images[i:i + BATCH]))
        return time.perf_counter() - start


def stage_pipeline(images: torch.Tensor, device: str) -> float:
    """Preprocess in one thread, classify in another, a bounded queue between (1 torch thread)."""
    pre, cls = _stages(device)
    handoff: queue.Queue[torch.Tensor | None] = queue.Queue(maxsize=4)

    def producer() -> None:
        for i in range(0, len(images), BATCH):
            handoff.put(pre(images[i:i + BATCH]))
        handoff.put(None)

    start = time.perf_counter()
    with torch_threads(1):
        t = threading.Thread(target=producer)
        t.start()
        while (item := handoff.get()) is not None:
            cls(item)
        t.join()
    return time.perf_counter() - start


_PIPELINE_PAYLOAD: dict[str, Any] = {}


class _BenchImages(Agent):
    """Emits the benchmark's in-memory images (a tensor cannot travel in workflow JSON)."""

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        return {"images": _PIPELINE_PAYLOAD}


class EngineRun:
    """The same two stages as engine nodes, run by one long-lived ``RunManager`` (as a server
    keeps one): each call submits a run and times preprocess start -> classify end. Untimed
    warm-up runs come first, until one faults in fewer than ``WARM_FAULTS`` fresh pages (the
    heap reaches its steady size after 3-12 runs: before, each run faulted in ~6,000 pages,
    15-20 ms of system time, for the output it keeps). ``close()`` shuts the manager down.
    Outputs kept in memory: ``KEEP_OUTPUTS_MB`` (each run keeps its 24 MB of preprocessed images;
    older runs' outputs are released), the steady state of a server at its output budget
    rather than the first runs of one still filling it, which pay for fresh pages every run.

    Each node gets the whole CPU allotment; the agents split it between batches at once and
    torch threads (``engine.agents.splits``) and log the choice.
    """

    def __init__(self, images: torch.Tensor, device: str, cpu: int, keep_pre: bool = True, fuse: bool = True,
                 cuda_at_once: int | None = None) -> None:
        from engine.resources import Capacity, GpuDevice
        from engine.runs import RunManager
        from engine.workflow import Workflow

        _PIPELINE_PAYLOAD.update(images=images, ids=[f"img-{i}" for i in range(len(images))],
                                 labels=None, classes=[])
        registry = Registry()
        registry.register_module("engine.agents.vision")
        registry.register(AgentSpec(
            name="bench.images", version="1", category="testing", description="benchmark images",
            outputs=(PortSpec("images", DataKind.IMAGE_BATCH),), factory=_BenchImages,
            resources=ResourceDemand(cpu=0.1)))
        gpus: tuple[GpuDevice, ...] = ()
        if device.startswith("cuda"):
            total = torch.cuda.get_device_properties(0).total_memory / 2**20
            gpus = (GpuDevice(index=0, name="cuda", memory_mb=total),)
        demand = {"cpu": cpu, "memory_mb": 256, "device": "cuda" if gpus else "cpu"}
        if gpus:
            demand["gpu_memory_mb"] = 512
        batch = {"execution": {"batch_size": BATCH}}
        self.workflow = Workflow.model_validate({
            "name": "bench-two-stage",
            "nodes": [
                {"id": "images", "agent": "bench.images"},
                {"id": "pre", "agent": "vision.preprocess", "resources": demand,
             "lifecycle": {"execution": {"batch_size": BATCH, "keep_outputs": keep_pre}},
                 "params": {"size": 64, "denoise": "gaussian", "strength": 1.0, "normalise": "unit"}},
                {"id": "cls", "agent": "vision.classify", "resources": demand, "lifecycle": batch},
            ],
            "edges": [{"source": "images", "target": "pre"}, {"source": "pre", "target": "cls"}],
            "capacity": {"cpu": cpu, "memory_mb": 4096},
        })
        self.manager = RunManager(registry, machine=Capacity(cpu=cpu, memory_mb=8192, gpus=gpus),
                                  keep_outputs_mb=KEEP_OUTPUTS_MB)
        self.fuse, self.cuda_at_once = fuse, cuda_at_once
        self.settings = ""
        self.nodes: dict[str, dict[str, Any]] = {}
        for _ in range(WARM_RUNS_MAX):  # warm-up: until the heap stops growing (see the class doc)
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            self()
            if resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before < WARM_FAULTS:
                break

    def __call__(self) -> float:
        from engine.agents import splits
        from engine.runs import RunOptions

        at_once = splits.CUDA_AT_ONCE
        if self.cuda_at_once is not None:  # an experiment: more batches at once on the GPU
            splits.CUDA_AT_ONCE = self.cuda_at_once
        try:
            handle = self.manager.submit(self.workflow, RunOptions(use_cache=False, predict=False, fuse=self.fuse))
            status = handle.wait(300)
        finally:
            splits.CUDA_AT_ONCE = at_once
        nodes = handle.snapshot().nodes
        if str(status) != "succeeded" and getattr(status, "value", "") != "succeeded":
            raise RuntimeError(f"engine run ended {status}: {[n['error'] for n in nodes.values()]}")
        settings: dict[str, Any] = {}
        for k in ("pre", "cls"):
            metrics = nodes[k]["metrics"] or {}
            settings[k] = {"threads": nodes[k]["threads"], "device": nodes[k]["device"],
                           "log": (nodes[k]["logs"] or [""])[-1],
                           "wall_s": round(nodes[k]["end"] - nodes[k]["start"], 4)}
            self.nodes[k] = {"device": nodes[k]["device"], "fused": bool(nodes[k]["fused_into"] or nodes[k]["chain"]),
                             "peak_gpu_mb": metrics.get("peak_gpu_mb"), "memory_mb": metrics.get("memory_mb")}
        if not self.nodes["cls"]["fused"]:  # fused nodes share one span: no gap between them
            settings["gap_s"] = round(nodes["cls"]["start"] - nodes["pre"]["end"], 4)
        self.settings = json.dumps(settings)
        return nodes["cls"]["end"] - nodes["pre"]["start"]

    def close(self) -> None:
        self.manager.shutdown()


PEER, REFERENCE, ENGINE, EXPERIMENT = "peer", "reference", "engine", "experiment"


def bench_pipeline(device: str, repeat: int, with_ray: bool = True) -> list[dict[str, Any]]:
    """Every variant ``repeat`` times, round-robin; best and median images/s per variant.

    Roles: ``peer`` = the issue's named peers (hand-written torch loops, a two-thread stage
    pipeline, Dask's threaded scheduler, Ray), which call the model as a module, as a person
    would; ``reference`` = ceilings, not peers, that keep nothing (no preprocessed images, labels
    or measurements, all of which the engine records): the batch thread pool, the same strategy
    as the engine's fused chain with no scheduler; and the two-thread hand loop calling the
    classify agent's inference path (``SmallCnn.infer``), which shows how much of the engine's
    lead is that path and how much the split.

    Ray runs in a phase of its own after the others: a started local Ray keeps nine processes
    that use ~4 % of a core while idle, with periodic wake-ups, which on 2 CPUs slowed every
    variant measured next to it (the engine's median by 10-15 %). Ray is 6-9x slower than the
    rest, so drift between the phases does not change how it compares.
    """
    images = _pipeline_images()
    variants: list[tuple[str, str, str, Callable[[], float]]] = [
        (PEER, "torch loop", "1 torch thread", lambda: loop(images, device, 1)),
        (PEER, "torch loop", "2 torch threads", lambda: loop(images, device, 2)),
        (PEER, "stage pipeline", "2 threads (1 per stage), 1 torch thread", lambda: stage_pipeline(images, device)),
    ]
    if importlib.util.find_spec("dask") is not None:
        variants.append((PEER, "dask threaded", "num_workers=2, 1 torch thread", lambda: dask_threads(images, device)))
    variants.append((REFERENCE, "batch thread pool", "2 batches at once, 1 torch thread each, keeps nothing",
                     lambda: batch_pool(images, device)))
    variants.append((REFERENCE, "torch loop", "2 torch threads, the classify agent's inference path "
                     "(SmallCnn.infer), keeps nothing", lambda: loop(images, device, 2, infer=True)))
    engines = [EngineRun(images, device, 1), EngineRun(images, device, 2),
               EngineRun(images, device, 2, keep_pre=False)]
    variants += [(ENGINE, "engine (RunManager)", "cpu allotment 1", engines[0]),
                 (ENGINE, "engine (RunManager)", "cpu allotment 2", engines[1]),
                 (ENGINE, "engine (RunManager)", "cpu allotment 2, preprocess keep_outputs off", engines[2])]
    if device.startswith("cuda"):  # each agent's own peak GPU memory (fused, they share one figure)
        engines.append(EngineRun(images, device, 2, fuse=False))
        variants.append((ENGINE, "engine (RunManager)", "cpu allotment 2, not fused", engines[-1]))
        engines.append(EngineRun(images, device, 2, cuda_at_once=2))  # experiment: see splits.CUDA_AT_ONCE
        variants.append((EXPERIMENT, "engine (RunManager)", "cpu allotment 2, 2 batches at once on the GPU",
                         engines[-1]))
    loop(images[:64], device, 1)  # warm-up
    times: dict[int, list[float]] = {i: [] for i in range(len(variants))}
    try:
        for _ in range(repeat):  # round-robin, so background load hits every variant alike
            for i, (_, _, _, fn) in enumerate(variants):
                times[i].append(fn())
    finally:
        for engine in engines:
            engine.close()
    if with_ray and importlib.util.find_spec("ray") is not None:
        ray_peer = RayPeer(device)
        try:
            ray_peer(images[:64])  # warm the workers
            times[len(variants)] = [ray_peer(images) for _ in range(repeat)]
            variants.append((PEER, "ray local", "2 CPUs, 1 task per stage and batch (own phase)", ray_peer))
        finally:
            ray_peer.close()
    # per round, the fastest peer of the round-robin (Ray, measured apart, is never it): the
    # paired ratio compares variants under the same moment's machine state
    round_robin_peers = [i for i, v in enumerate(variants) if v[0] == PEER and i in times and len(times[i]) == repeat
                         and v[1] != "ray local"]
    fastest = [min(times[i][r] for i in round_robin_peers) for r in range(repeat)] if round_robin_peers else []
    rows = []
    for i, (role, name, settings, fn) in enumerate(variants):
        extra = getattr(fn, "settings", "")
        got = times[i]
        paired = (statistics.median(f / t for f, t in zip(fastest, got, strict=True))
                  if fastest and name != "ray local" else float("nan"))
        rows.append({"role": role, "variant": name, "settings": f"{settings} {extra}".strip(),
                     "images_per_s": N_IMAGES / min(got) if got else float("nan"),
                     "median_images_per_s": N_IMAGES / statistics.median(got) if got else float("nan"),
                     "paired_vs_fastest_peer": paired, "agents": dict(getattr(fn, "nodes", {}))})
    return rows


class RayPeer:
    """The two stages as Ray tasks on a local Ray (2 CPUs, 1 torch thread per task): each batch
    is ``classify.remote(preprocess.remote(batch))``; all batches submitted at once. Ray starts
    once (not timed); the first call warms the workers (model loaded per worker process)."""

    def __init__(self, device: str) -> None:
        import ray

        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
        self.ray = ray

        gpus = 0.5 if device.startswith("cuda") else 0  # Ray hides GPUs from tasks that ask for none

        @ray.remote(num_cpus=1, num_gpus=gpus)
        def pre(x: torch.Tensor) -> torch.Tensor:
            torch.set_num_threads(1)
            return _stages(device)[0](x)

        @ray.remote(num_cpus=1, num_gpus=gpus)
        def cls(x: torch.Tensor) -> torch.Tensor:
            torch.set_num_threads(1)
            return _stages(device)[1](x)

        self.pre, self.cls = pre, cls

    def __call__(self, images: torch.Tensor) -> float:
        start = time.perf_counter()
        refs = [self.cls.remote(self.pre.remote(images[i:i + BATCH])) for i in range(0, len(images), BATCH)]
        self.ray.get(refs)
        return time.perf_counter() - start

    def close(self) -> None:
        self.ray.shutdown()


def batch_pool(images: torch.Tensor, device: str, workers: int = 2) -> float:
    """Whole batches (preprocess then classify) on a pool of threads, 1 torch thread each
    (what Dask's threaded scheduler does with this graph)."""
    from concurrent.futures import ThreadPoolExecutor

    pre, cls = _stages(device)
    start = time.perf_counter()
    with torch_threads(1), ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda i: cls(pre(images[i:i + BATCH])), range(0, len(images), BATCH)))
    return time.perf_counter() - start


def dask_threads(images: torch.Tensor, device: str) -> float:
    """The two stages as a dask.delayed graph on Dask's threaded scheduler (2 workers)."""
    import dask

    pre, cls = _stages(device)
    start = time.perf_counter()
    with torch_threads(1):
        tasks = [dask.delayed(cls)(dask.delayed(pre)(images[i:i + BATCH]))
                 for i in range(0, len(images), BATCH)]
        dask.compute(*tasks, scheduler="threads", num_workers=2)
    return time.perf_counter() - start


def _print_agents(rows: list[dict[str, Any]]) -> None:
    print(f"{'agent':26} {'items':>6} {'run s':>8} {'ms/item':>8} {'items/s':>9} "
          f"{'decl s':>7} {'RSS+ MB':>8} {'cuda MB':>8} {'decl MB':>8}")
    for r in rows:
        print(f"{r['agent']:26} {r['items']:6d} {r['run_s']:8.4f} {r['ms_per_item']:8.3f} "
              f"{r['items_per_s']:9.0f} {r['declared_s']:7.3f} {r['peak_rss_delta_mb']:8.1f} "
              f"{r['cuda_peak_mb']:8.1f} {r['declared_memory_mb']:8.0f}")


def _print_templates(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'agent':24} {'where':42} {'items':>6} {'run s':>8} {'ms/item':>8} {'decl s':>7} "
          f"{'RSS+ MB':>8} {'decl MB':>8}")
    for r in rows:
        print(f"{r['agent']:24} {r['where'][:42]:42} {r['items']:6d} {r['run_s']:8.4f} {r['ms_per_item']:8.3f} "
              f"{r['declared_s']:7.3f} {r['peak_rss_delta_mb']:8.1f} {r['declared_memory_mb']:8.0f}")


def _print_sizes(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'agent':26} {'sizes':>10} {'run s':>17} {'ms/item':>8} {'decl':>7} {'fixed s':>8} {'decl':>7}"
          f" {'decl s at large':>16}")
    for r in rows:
        sizes, runs = "/".join(map(str, r["sizes"])), "/".join(f"{t:.4f}" for t in r["run_s"])
        print(f"{r['agent']:26} {sizes:>10} {runs:>17} {r['measured_per_item_ms']:8.4f} "
              f"{r['declared_per_item_ms']:7.3f} {r['measured_fixed_s']:8.4f} {r['declared_fixed_s']:7.3f}"
              f" {r['declared_at_large_s']:16.3f}")


def _print_scale(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'template':16} {'size':34} {'node':14} {'agent':24} {'items':>7} {'run s':>7} {'decl s':>7} "
          f"{'decl/run':>8} {'mem MB':>7} {'decl MB':>8}")
    for r in rows:
        items = "?" if r["items"] is None else f"{r['items']}"
        ratio = r["declared_s"] / r["run_s"] if r["run_s"] > 0 else float("nan")
        print(f"{r['template']:16} {r['size'][:34]:34} {r['node'][:14]:14} {r['agent']:24} {items:>7} "
              f"{r['run_s']:7.3f} {r['declared_s']:7.3f} {ratio:8.1f} {r['memory_mb']:7.1f} "
              f"{r['declared_memory_mb']:8.1f}")


def _print_pixels(rows: list[dict[str, Any]]) -> None:
    print(f"\n{'agent':18} {'params':42} {'image':>9} {'ms/item':>8} {'decl':>8} {'decl/run':>8} {'decl MB/item':>12}")
    for r in rows:
        image = f"{r['channels']}x{r['side']}"
        ratio = r["declared_ms_per_item"] / r["ms_per_item"] if r["ms_per_item"] > 0 else float("nan")
        print(f"{r['agent']:18} {json.dumps(r['params'])[:42]:42} {image:>9} {r['ms_per_item']:8.3f} "
              f"{r['declared_ms_per_item']:8.3f} {ratio:8.1f} {r['declared_mb_per_item']:12.2f}")


def _print_pipeline(rows: list[dict[str, Any]], device: str, repeat: int, result: dict[str, Any]) -> None:
    peers = [r for r in rows if r["role"] == PEER]
    best_peer = max(r["images_per_s"] for r in peers)
    best_median = max(r["median_images_per_s"] for r in peers)
    print(f"\ntwo-stage pipeline, {N_IMAGES} images 3x64x64, batches of {BATCH}, {device}, "
          f"best / median of {repeat}")
    for r in rows:
        print(f"{r['role']:9} {r['variant']:20} {r['images_per_s']:7.0f} img/s x{r['images_per_s'] / best_peer:4.2f}"
              f"   median {r['median_images_per_s']:7.0f} x{r['median_images_per_s'] / best_median:4.2f}"
              f"   paired x{r['paired_vs_fastest_peer']:4.2f}  {r['settings']}")
        for node, m in r.get("agents", {}).items():  # the engine's own measurements, last run
            gpu = "-" if m["peak_gpu_mb"] is None else f"{m['peak_gpu_mb']:.1f} MB"
            host = "-" if m["memory_mb"] is None else f"{m['memory_mb']:.1f} MB"
            print(f"{'':9}   {node:4} on {m['device']:7} peak GPU memory {gpu:>9}, host memory {host:>9}"
                  + ("  (fused: the chain's figure)" if m["fused"] else ""))
    print("x = ratio to the best peer (best of runs; medians to the best peer median); paired = median over\n"
          "rounds of (fastest peer's time in that round / this variant's time), 1.00 = as fast")
    result["best_peer_images_per_s"] = best_peer
    result["best_peer_median_images_per_s"] = best_median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda:0")
    parser.add_argument("--only", choices=["agents", "templates", "sizes", "pixels", "scale", "pipeline"],
                        default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    parser.add_argument("--no-ray", action="store_true", help="leave the Ray peer out (it starts a local Ray)")
    args = parser.parse_args(argv)
    result: dict[str, Any] = {"device": args.device, "cpus": psutil.cpu_count(),
                              "torch": torch.__version__, "load_avg_before": os.getloadavg()}
    print(f"device {args.device}, {psutil.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    sections: list[tuple[str, Callable[[], list[dict[str, Any]]], Callable[[list[dict[str, Any]]], None]]] = [
        ("agents", lambda: bench_agents(args.device, args.repeat), _print_agents),
        ("templates", lambda: bench_templates(args.device, args.repeat), _print_templates),
        ("sizes", lambda: bench_sizes(args.device, args.repeat), _print_sizes),
        ("scale", lambda: bench_scale(args.device, args.repeat), _print_scale),
        ("pipeline", lambda: bench_pipeline(args.device, args.repeat, with_ray=not args.no_ray),
         lambda rows: _print_pipeline(rows, args.device, args.repeat, result)),
        # last: the longest table, and a time-limited run (bench/gpu/check.sh) keeps the others
        ("pixels", lambda: bench_pixels(args.device, args.repeat), _print_pixels),
    ]
    failed = 0
    for name, measure, show in sections:
        if args.only not in (None, name):
            continue
        try:  # one section that fails (say, on a device) does not lose the others' results
            result[name] = measure()
            show(result[name])
        except Exception as exc:
            failed += 1
            result.setdefault("errors", {})[name] = f"{type(exc).__name__}: {exc}"
            print(f"\n{name}: FAILED: {type(exc).__name__}: {exc}")
        if args.json:  # written after every section, so a run cut short keeps what it measured
            args.json.write_text(json.dumps(result, indent=2, default=str))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
