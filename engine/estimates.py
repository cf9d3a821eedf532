"""Learned estimates: each agent's duration and peak memory per (agent, params, device, batch
size) from stored runs, with robust statistics (median, p95, MAD, count), and the accuracy of
predicted against actual makespans. Input is plain run data (storage's RunDetail or its dict);
the engine never reads the database itself.

Durations are scaled by size: given a registry, each sample keeps the number of items planned for
its node in its run (``engine.items``), and a node planned with another number is predicted from
a line fitted to its samples (two or more sizes) or, from one size, between proportional growth
and the growth of its declaration (``scale_to_size``), so a classifier measured on 256 images is
not planned at the same time for 4,096. Memory is each node's own (``node_memory_mb``), scaled
as the declared memory grows (``memory_for``).
"""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine.items import planned_items
from engine.metrics import own_memory_mb
from engine.registry import Registry
from engine.spec import ImageSizes
from engine.workflow import NodeSpec, Workflow

MIN_RUNS = 3
SIMULATED = frozenset({"sim.task"})
SAME_SIZE = 1.1  # planned and measured sizes within this ratio: the median as measured
FIT_SPREAD = 1.5  # measured sizes at least this far apart: fit a line (fixed + per item)


def node_memory_mb(record: Mapping[str, Any]) -> float | None:
    """A finished node's own memory from its stored record (``engine.metrics.own_memory_mb``), or
    None when there is none to learn from. A node fused into a chain is measured with its chain,
    not on its own, so neither the chain's first node nor the others count."""
    metrics = record.get("metrics") or {}
    if metrics.get("chain") or metrics.get("fused_into"):
        return None
    value = own_memory_mb(metrics, record.get("peak_rss_mb"))
    return float(value) if value is not None else None


@dataclass(frozen=True)
class Stat:
    """Robust summary of samples: how many, median, 95th percentile, median absolute deviation."""

    count: int
    median: float
    p95: float
    mad: float
    low: float
    high: float

    @staticmethod
    def of(values: Iterable[float]) -> Stat:
        xs = sorted(float(v) for v in values)
        if not xs:
            return Stat(0, 0.0, 0.0, 0.0, 0.0, 0.0)
        med = statistics.median(xs)
        rank = 0.95 * (len(xs) - 1)
        lo = int(rank)
        p95 = xs[lo] + (xs[min(lo + 1, len(xs) - 1)] - xs[lo]) * (rank - lo)
        mad = statistics.median(abs(x - med) for x in xs)
        return Stat(len(xs), med, p95, mad, xs[0], xs[-1])


@dataclass(frozen=True)
class Key:
    agent: str
    params_hash: str
    device: str  # cpu | cuda
    batch_size: int | None


def params_hash(params: Mapping[str, Any]) -> str:
    text = json.dumps(dict(params), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def _batch(node: Mapping[str, Any]) -> int | None:
    value = ((node.get("lifecycle") or {}).get("execution") or {}).get("batch_size")
    return int(value) if isinstance(value, int | float) else None


def _as_dict(item: Any) -> dict[str, Any]:
    if isinstance(item, Mapping):
        return dict(item)
    return item.to_dict()


@dataclass(frozen=True)
class LearnedDurations:
    """Durations for ``problem_from_workflow(durations=...)`` and where each one came from."""

    durations: dict[str, float]  # only the learned ones; others fall back to the declaration
    source: dict[str, str]  # node -> "learned (n runs)" [+ how it was scaled] | "declared"
    counts: dict[str, int] = field(default_factory=dict)
    scaled: dict[str, float] = field(default_factory=dict)  # node -> learned value / its median


class Estimates:
    """Samples per Key, learned from runs. ``min_runs``: samples needed before a value is used."""

    def __init__(self, min_runs: int = MIN_RUNS, simulated: Callable[[str], bool] | None = None,
                 registry: Registry | None = None) -> None:
        self.min_runs = min_runs
        self.simulated = simulated or SIMULATED.__contains__
        self.registry = registry  # for planned item counts (no size scaling without it)
        self.wall: dict[Key, list[float]] = {}
        self.sizes: dict[Key, list[int | None]] = {}  # planned input items, one per wall sample
        self.memory: dict[Key, list[float]] = {}
        self.memory_sizes: dict[Key, list[int | None]] = {}  # planned input items, one per memory sample
        # the planned images of the node (received, emitted) for agents whose cost grows with them
        # (None for others), one per wall and memory sample: a 64 px run says little about 512 px
        self.shapes: dict[Key, list[ImageSizes | None]] = {}
        self.memory_shapes: dict[Key, list[ImageSizes | None]] = {}
        self._memory_samples: dict[Key, list[tuple[float, int | None, bool, ImageSizes | None]]] = {}
        self.gpu_memory: dict[Key, list[float]] = {}
        self.run_ids: dict[Key, set[str]] = {}  # the runs each key's samples come from
        self.runs = 0

    @classmethod
    def from_runs(cls, runs: Iterable[Any], min_runs: int = MIN_RUNS,
                  simulated: Callable[[str], bool] | None = None, registry: Registry | None = None) -> Estimates:
        """Learn from stored runs (RunDetail objects or their ``to_dict()``)."""
        est = cls(min_runs, simulated, registry)
        for run in runs:
            est.add_run(run)
        return est

    def add_run(self, run: Any) -> None:
        """Add the finished (not cached) nodes of one run."""
        data = _as_dict(run)
        workflow = data.get("workflow") or {}
        nodes = {n.get("id"): n for n in workflow.get("nodes", []) if isinstance(n, Mapping)}
        sized = planned_items(workflow, self.registry) if self.registry is not None and nodes else None
        sizes = sized.items_in if sized is not None else {}
        scale = float((data.get("options") or {}).get("time_scale") or 1.0)
        run_id = str((data.get("summary") or {}).get("id") or data.get("id") or f"run{self.runs}-{id(run)}")
        added = False
        for rec in data.get("nodes") or []:
            r = _as_dict(rec)
            spec = nodes.get(r.get("node_id"))
            if spec is None or r.get("status") != "done" or r.get("cached") or r.get("wall_s") is None:
                continue
            key = Key(spec.get("agent", r.get("agent", "")), params_hash(spec.get("params") or {}),
                      "cuda" if str(r.get("device") or "").startswith("cuda") else "cpu", _batch(spec))
            wall = float(r["wall_s"])
            if self.simulated(key.agent) and scale > 0:
                wall /= scale
            shape = self._images_for(key.agent, sized.images(str(r.get("node_id"))) if sized is not None else None)
            self.wall.setdefault(key, []).append(wall)
            self.sizes.setdefault(key, []).append(sizes.get(r.get("node_id")))
            self.shapes.setdefault(key, []).append(shape)
            self.run_ids.setdefault(key, set()).add(run_id)
            if (memory := node_memory_mb(r)) is not None:
                self._add_memory(key, memory, sizes.get(r.get("node_id")), bool((r.get("metrics") or {}).get("cold")),
                                 shape)
            if r.get("peak_gpu_mb") is not None:
                self.gpu_memory.setdefault(key, []).append(float(r["peak_gpu_mb"]))
            added = True
        self.runs += added

    def _images_for(self, agent: str, images: ImageSizes | None) -> ImageSizes | None:
        """A node's planned ``images`` where its agent's declared cost grows with them (samples
        are kept and looked up by them); None for other agents: their samples match any."""
        if images is None or self.registry is None or agent not in self.registry:
            return None
        return images if self.registry.get(agent).per_image_fn is not None else None

    def _add_memory(self, key: Key, mb: float, items: int | None, cold: bool,
                    shape: ImageSizes | None = None) -> None:
        """Keep a memory sample. A cold one (the agent's first run in its process) also counts the
        imports and model loads that later runs in that process do not repeat: the breast-cancer
        source measured 120 MB cold and 16 MB after. So the estimates use the warm samples where
        there are any, and the cold ones only where every run was a first one (each CLI run is its
        own process), which is what such a process needs."""
        samples = self._memory_samples.setdefault(key, [])
        samples.append((mb, items, cold, shape))
        use = [s for s in samples if not s[2]] or samples
        self.memory[key] = [s[0] for s in use]
        self.memory_sizes[key] = [s[1] for s in use]
        self.memory_shapes[key] = [s[3] for s in use]

    # -- lookups ---------------------------------------------------------------------------
    def _key(self, node: NodeSpec | Mapping[str, Any], table: dict[Key, list[float]]) -> Key | None:
        n = node.model_dump() if isinstance(node, NodeSpec) else dict(node)
        base = (n.get("agent", ""), params_hash(n.get("params") or {}))
        batch = _batch(n)
        wanted = (n.get("resources") or {}).get("device")
        keys = [k for k in table if (k.agent, k.params_hash) == base and k.batch_size == batch]
        if wanted in ("cpu", "cuda"):
            keys = [k for k in keys if k.device == wanted] or keys
        return max(keys, key=lambda k: len(table[k]), default=None)

    def stat(self, node: NodeSpec | Mapping[str, Any], what: str = "duration") -> Stat | None:
        """The statistics of ``what`` (duration | memory | gpu_memory) for a node, or None."""
        table = {"duration": self.wall, "memory": self.memory, "gpu_memory": self.gpu_memory}[what]
        key = self._key(node, table)
        return Stat.of(table[key]) if key is not None else None

    def runs_of(self, node: NodeSpec | Mapping[str, Any]) -> int:
        """How many runs the node's estimates rest on (samples of one run count once)."""
        key = self._key(node, self.wall)
        return len(self.run_ids.get(key, ())) if key is not None else 0

    def duration(self, node: NodeSpec | Mapping[str, Any]) -> float | None:
        """Median measured duration (agent time unit) once ``min_runs`` samples exist, else None."""
        s = self.stat(node, "duration")
        return s.median if s and self.runs_of(node) >= self.min_runs else None

    def peak_memory_mb(self, node: NodeSpec | Mapping[str, Any]) -> float | None:
        """p95 of the node's measured own memory (``node_memory_mb``) once ``min_runs`` samples
        exist, else None."""
        s = self.stat(node, "memory")
        return s.p95 if s and self.runs_of(node) >= self.min_runs else None

    def memory_for(self, node: NodeSpec, planned: int | None,
                   declared: Callable[[int], float] | None = None,
                   images: ImageSizes | None = None) -> tuple[float, str] | None:
        """p95 peak memory for ``planned`` items (None below ``min_runs``), and how it was found:
        as measured when measured at about that size or the size is unknown, else scaled as the
        agent's declared memory grows from the measured size to ``planned`` (memory bound by
        batches does not grow: only agents that declare growth are scaled). ``images``: the
        node's planned images; for an agent whose cost grows with them, only samples measured
        at those images count."""
        key = self._key(node, self.memory)
        if key is None or self.runs_of(node) < self.min_runs:
            return None
        memory, sizes = _at_images(self.memory[key], self.memory_sizes.get(key, []),
                                   self.memory_shapes.get(key, []), self._images_for(node.agent, images))
        if len(memory) < self.min_runs:
            return None
        p95 = Stat.of(memory).p95
        sized = _sized(sizes, memory)
        if planned is None or not sized or declared is None:
            return p95, ""
        if near := _near(sized, planned):
            return Stat.of(near).p95, ""
        size = round(statistics.median(n for n, _ in sized))
        base = declared(size)
        factor = declared(planned) / base if base > 0 else 1.0
        if abs(factor - 1) < 0.05:
            return p95, ""
        return Stat.of([m for _, m in sized]).p95 * factor, f"measured at {size:,} items, scaled to {planned:,}"

    def durations_for(self, workflow: Workflow) -> LearnedDurations:
        """The planner's ``durations`` mapping: learned where enough samples exist (scaled to the
        items planned for this workflow, see the module docstring), else declared."""
        durations: dict[str, float] = {}
        source: dict[str, str] = {}
        counts: dict[str, int] = {}
        scaled: dict[str, float] = {}
        sized = planned_items(workflow, self.registry) if self.registry is not None else None
        planned = sized.items_in if sized is not None else {}
        for node in workflow.nodes:
            key = self._key(node, self.wall)
            counts[node.id] = runs = self.runs_of(node)
            if key is None or runs < self.min_runs:
                source[node.id] = "declared"
                continue
            images = sized.images(node.id) if sized is not None else None
            walls, sizes = _at_images(self.wall[key], self.sizes.get(key, []), self.shapes.get(key, []),
                                      self._images_for(node.agent, images))
            if len(walls) < self.min_runs:
                source[node.id] = "declared (its runs had other image sizes)"
                continue
            median = Stat.of(walls).median
            value, how = scale_to_size(walls, sizes, planned.get(node.id), self._declared(node, images))
            durations[node.id] = value
            source[node.id] = f"learned ({runs} runs{how})"
            if median > 0 and how:
                scaled[node.id] = value / median
        return LearnedDurations(durations, source, counts, scaled)

    def _declared(self, node: NodeSpec, images: ImageSizes | None = None) -> Callable[[int], float] | None:
        """The node's declared duration as a function of its items, at the images' planned sizes
        (None: unknown agent or bad params)."""
        if self.registry is None or node.agent not in self.registry:
            return None
        spec = self.registry.get(node.agent)
        try:
            params = spec.parse_params(node.params)
        except ValueError:  # pydantic's ValidationError: validation reports it
            return None
        return lambda items: spec.expected_duration(params, items, images=images)

    def table(self, workflow: Workflow) -> list[dict[str, Any]]:
        """One row per node: learned duration and memory statistics (for display)."""
        rows = []
        for node in workflow.nodes:
            d, m = self.stat(node, "duration"), self.stat(node, "memory")
            runs = self.runs_of(node)
            rows.append({
                "node": node.id, "agent": node.agent, "runs": runs, "samples": d.count if d else 0,
                "duration_median_s": d.median if d else None, "duration_p95_s": d.p95 if d else None,
                "duration_mad_s": d.mad if d else None,
                "memory_median_mb": m.median if m else None, "memory_p95_mb": m.p95 if m else None,
                "used": bool(d and runs >= self.min_runs),
            })
        return rows


def scale_to_size(walls: list[float], sizes: list[int | None], planned: int | None,
                  declared: Callable[[int], float] | None = None) -> tuple[float, str]:
    """A duration for ``planned`` items from samples measured at ``sizes`` items, and how it was
    found ("" when as measured). Sizes that are None or 0 are not used for scaling.

    - Samples at about ``planned`` items (within ``SAME_SIZE``): their median.
    - Two or more sizes at least ``FIT_SPREAD`` apart: a Theil-Sen line (the median of the
      pairwise slopes, then the median intercept; both at least 0).
    - One size: the median times the geometric mean of two factors, ``planned / size`` (no fixed
      cost: the most it can grow) and ``declared(planned) / declared(size)`` (the agent's declared
      fixed part plus time per item, whose fixed parts are generous floors: less than it grows).
      Without ``declared`` the second factor is 1.
    """
    median = Stat.of(walls).median
    pairs = _sized(sizes, walls)
    if planned is None or not pairs:
        return median, ""
    if near := _near(pairs, planned):  # measured at this size: as measured
        return Stat.of(near).median, ""
    xs = sorted({n for n, _ in pairs})
    if xs[-1] >= FIT_SPREAD * xs[0]:
        slopes = [(w2 - w1) / (n2 - n1) for i, (n1, w1) in enumerate(pairs) for n2, w2 in pairs[i + 1:] if n2 != n1]
        slope = max(0.0, statistics.median(slopes))
        fixed = max(0.0, statistics.median(w - slope * n for n, w in pairs))
        return fixed + slope * planned, f", fitted to {len(xs)} sizes for {planned:,} items"
    size = statistics.median(n for n, _ in pairs)
    shape = 1.0
    if declared is not None and declared(round(size)) > 0:
        shape = declared(planned) / declared(round(size))
    factor = math.sqrt(planned / size * shape)
    return Stat.of([w for _, w in pairs]).median * factor, \
        f", scaled from {size:,.0f} to {planned:,} items (x{factor:.2g})"


def _sized(sizes: list[int | None], values: list[float]) -> list[tuple[float, float]]:
    """(size, value) for the samples whose size is known (not None or 0)."""
    return [(float(n), v) for n, v in zip(sizes, values, strict=False) if n]


def _near(pairs: list[tuple[float, float]], planned: int) -> list[float]:
    """The values measured at about ``planned`` items (within ``SAME_SIZE``)."""
    return [v for n, v in pairs if n / SAME_SIZE <= planned <= n * SAME_SIZE]


def actual_makespan(run: Any) -> float | None:
    """Last node end minus first node start of a stored run (agent time unit for simulated
    workflows: divided by the run's ``time_scale`` when every node is simulated)."""
    data = _as_dict(run)
    recs = [_as_dict(r) for r in data.get("nodes") or []]
    starts = [r["started_at"] for r in recs if r.get("started_at") is not None]
    ends = [r["finished_at"] for r in recs if r.get("finished_at") is not None]
    if not starts or not ends:
        return None
    span = max(ends) - min(starts)
    agents = {n.get("agent") for n in (data.get("workflow") or {}).get("nodes", []) if isinstance(n, Mapping)}
    scale = float((data.get("options") or {}).get("time_scale") or 1.0)
    if agents and agents <= SIMULATED and scale > 0:
        span /= scale
    return span


@dataclass(frozen=True)
class AccuracyPoint:
    run_id: str
    created: float
    actual: float
    predicted_stored: float | None  # the plan stored with the run (declared durations)
    predicted_learned: float | None  # re-planned with estimates learned from the earlier runs
    learned_from: int  # how many earlier runs

    @property
    def error_stored(self) -> float | None:
        return abs(self.predicted_stored / self.actual - 1) if self.predicted_stored and self.actual else None

    @property
    def error_learned(self) -> float | None:
        return abs(self.predicted_learned / self.actual - 1) if self.predicted_learned and self.actual else None


def accuracy(runs: Iterable[Any], predict: Callable[[Workflow, Estimates, dict[str, Any]], float | None],
             min_runs: int = MIN_RUNS, registry: Registry | None = None) -> list[AccuracyPoint]:
    """Predicted vs actual makespan of each finished run, oldest first.

    ``predict(workflow, estimates, run_dict)`` re-plans a run with estimates learned from the
    runs before it (see engine.rightsizing.predict_makespan); it returns None to skip.
    """
    items = sorted((_as_dict(r) for r in runs), key=lambda d: (d.get("summary") or {}).get("created") or 0.0)
    est = Estimates(min_runs, registry=registry)
    out: list[AccuracyPoint] = []
    for data in items:
        summary = data.get("summary") or {}
        actual = actual_makespan(data)
        if summary.get("status") == "succeeded" and actual:
            workflow = Workflow.model_validate(data["workflow"])
            learned = predict(workflow, est, data) if est.runs >= min_runs else None
            stored = (data.get("plan") or {}).get("makespan")
            out.append(AccuracyPoint(summary.get("id", ""), summary.get("created") or 0.0, actual,
                                     float(stored) if stored is not None else None, learned, est.runs))
        est.add_run(data)
    return out


def _at_images(values: list[float], sizes: list[int | None], shapes: list[ImageSizes | None],
               wanted: ImageSizes | None) -> tuple[list[float], list[int | None]]:
    """The samples (and their sizes) measured at ``wanted`` images; all of them when None."""
    if wanted is None:
        return values, sizes
    keep = [i for i, shape in enumerate(shapes) if shape == wanted]
    return [values[i] for i in keep], [sizes[i] if i < len(sizes) else None for i in keep]
