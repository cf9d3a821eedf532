"""Agents as services: the ``AgentSpec`` a model is registered with, and the ``Agent`` it runs as.

An AgentSpec is the service contract (typed ports, parameter schema, resource demand, expected
duration, lifecycle rules). An Agent is the running instance: ``load(device)``, ``run(inputs,
ctx)``, ``unload()``. Models load once per (agent, params, device) and may stay warm.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from time import monotonic as _monotonic
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import RunCancelledError
from engine.kinds import DataKind
from engine.resources import ResourceDemand

_FROZEN = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
TYPICAL_ITEMS = 64  # items assumed for a per-item declaration when the planner cannot tell

ImageShape = tuple[int, int, int]  # channels, height, width of one image item
NeededShape = tuple[int | None, int | None, int | None]  # the same, None where any size will do


# A parameter that names something the node receives: a column of its input table ("column"),
# several ("columns"), a class of its input scores ("class"), a value of the column its `field`
# names, where that column holds class names ("value"). The designer offers the ones the
# workflow knows (``AgentSpec.columns_fn``) instead of a text box.
PICKS_KEY = "x-picks"


def picks(what: Literal["column", "columns", "class", "value"]) -> dict[str, str]:
    """``json_schema_extra`` of a parameter that names ``what`` of what the node receives."""
    return {PICKS_KEY: what}


def values_of(shape: ImageShape) -> int:
    """The numbers one image of ``shape`` holds (channels x height x width)."""
    channels, height, width = shape
    return channels * height * width


@dataclass(frozen=True)
class ImageSizes:
    """The planned shape of one image a node receives (the largest on its inputs) and of one it
    emits; None where the workflow cannot tell or the node handles no images."""

    received: ImageShape | None = None
    emitted: ImageShape | None = None

    @property
    def larger(self) -> ImageShape | None:
        """The larger (by pixels) of the image received and the one emitted, for messages."""
        shapes = [s for s in (self.received, self.emitted) if s]
        return max(shapes, key=lambda s: s[1] * s[2]) if shapes else None


@dataclass(frozen=True)
class PortSpec:
    """A typed input or output of an agent.

    Attributes:
        name: port name, unique among the agent's inputs (or outputs).
        kind: the data kind it carries.
        description: one line for the UI.
        required: inputs only; a required input must be connected.
        multiple: inputs only; accepts several edges (their values arrive as a list).
        accepts: inputs of kind ``any`` only: the kinds it can read (empty: every kind).
            Validation and the canvas refuse a wire of another kind.
    """

    name: str
    kind: DataKind
    description: str = ""
    required: bool = True
    multiple: bool = False
    accepts: tuple[DataKind, ...] = ()


class StartCondition(BaseModel):
    """When a node may start: once ``all`` its connected inputs are ready, or ``any`` of them."""

    model_config = _FROZEN
    inputs: Literal["all", "any"] = "all"


class ExecutionStrategy(BaseModel):
    """How a node runs: retries with exponential backoff, a timeout, a batch size."""

    model_config = _FROZEN
    retries: int = Field(0, ge=0, le=100, description="extra attempts after a failure")
    backoff_s: float = Field(0.5, ge=0, le=3600, description="wait before the first retry, s")
    backoff_factor: float = Field(2.0, ge=1, le=10, description="wait multiplier per retry")
    timeout_s: float | None = Field(None, gt=0, le=7 * 86400, description="per attempt, s")
    batch_size: int | None = Field(None, ge=1, le=1_000_000, description="items per batch")
    isolate: bool = Field(False, description="run in its own process (killable on timeout/cancel)")
    keep_outputs: bool = Field(True, description="keep the outputs in memory after the run; off: dropped "
                               "once every downstream node has finished (the summary stays, and the "
                               "cached copy when caching is on)")


class ExitCondition(BaseModel):
    """When a node stops: after ``max_items`` items or ``time_limit_s`` seconds (both optional)."""

    model_config = _FROZEN
    max_items: int | None = Field(None, ge=1, le=10**9)
    time_limit_s: float | None = Field(None, gt=0, le=7 * 86400)


class Lifecycle(BaseModel):
    """The lifecycle rules of an agent (defaults) or a node (overrides)."""

    model_config = _FROZEN
    start: StartCondition = StartCondition()
    execution: ExecutionStrategy = ExecutionStrategy()
    exit: ExitCondition = ExitCondition()

    def merged(self, overrides: Mapping[str, Any] | None) -> Lifecycle:
        """These rules with a node's partial overrides applied (nested dicts merge)."""
        if not overrides:
            return self
        return Lifecycle.model_validate(merged_sections(self.model_dump(), overrides))


def merged_sections(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Lifecycle settings ``base`` with ``overrides`` applied section by section: a section given
    as a mapping merges into the base's (its keys win), anything else replaces it."""
    out: dict[str, Any] = {k: dict(v) if isinstance(v, Mapping) else v for k, v in base.items()}
    for section, values in overrides.items():
        if isinstance(values, Mapping) and isinstance(out.get(section), dict):
            out[section].update(values)
        else:
            out[section] = values
    return out


class NoParams(BaseModel):
    """Parameter schema of an agent without parameters."""

    model_config = ConfigDict(extra="forbid")


class RunContext:
    """What a running agent may use: device, threads, cancellation, progress and logs.

    The executor creates one per attempt; agents call ``check_cancelled()`` between batches so
    a cancel or timeout stops them promptly.
    """

    def __init__(
        self,
        *,
        node_id: str = "node",
        run_id: str = "",
        device: str = "cpu",
        threads: int = 1,
        lifecycle: Lifecycle | None = None,
        cancel_event: threading.Event | None = None,
        on_progress: Callable[[int, int | None], None] | None = None,
        on_log: Callable[[str], None] | None = None,
        deadline: float | None = None,
        clock: Callable[[], float] | None = None,
        time_scale: float = 1.0,
        stop_at: float | None = None,
        attempt: int = 1,
    ) -> None:
        self.node_id = node_id
        self.run_id = run_id
        self.time_scale = time_scale
        self.attempt = attempt  # 1 for the first try, 2 for the first retry, ...
        self.device = device
        self.threads = max(1, threads)
        self.lifecycle = lifecycle or Lifecycle()
        self.cancel_event = cancel_event or threading.Event()
        self._on_progress = on_progress
        self._on_log = on_log
        self.deadline = deadline
        self.stop_at = stop_at  # exit condition time_limit_s: stop early, NOT a failure
        self._clock = clock or _monotonic
        self.items_processed = 0
        self.logs: list[str] = []
        self.slot_source: Callable[..., Any] | None = None  # set while batches are joined (payloads.Joiner.slot)

    @property
    def batch_size(self) -> int | None:
        return self.lifecycle.execution.batch_size

    @property
    def max_items(self) -> int | None:
        return self.lifecycle.exit.max_items

    def cancelled(self) -> bool:
        return self.cancel_event.is_set()

    def check_cancelled(self) -> None:
        """Raise ``RunCancelledError`` if the node was cancelled or ran past its deadline."""
        if self.cancel_event.is_set():
            raise RunCancelledError(f"node {self.node_id!r} was cancelled")
        if self.deadline is not None and self._clock() > self.deadline:
            from engine.errors import AgentTimeoutError

            raise AgentTimeoutError(f"node {self.node_id!r} ran past its timeout")

    def should_stop(self) -> bool:
        """True once an exit condition holds (``max_items`` reached or ``time_limit_s`` passed).

        Agents that process items check it between batches and return what they have so far.
        """
        if self.max_items is not None and self.items_processed >= self.max_items:
            return True
        return self.stop_at is not None and self._clock() >= self.stop_at

    def time_left(self) -> float | None:
        return None if self.deadline is None else self.deadline - self._clock()

    def progress(self, done: int, total: int | None = None) -> None:
        self.items_processed = done
        if self._on_progress:
            self._on_progress(done, total)

    def log(self, message: str) -> None:
        self.logs.append(message)
        if self._on_log:
            self._on_log(message)

    def output_slot(self, port: str, key: str, part: slice, like: Any) -> Any | None:
        """Where an itemwise agent may write field ``key`` of output ``port`` for the batch
        ``part`` (a view of the joined tensor, shaped and typed like ``like``), so the batch need
        not be copied there afterwards; None when the engine is not joining batches or ``like``
        does not fit (the agent then returns a new tensor as usual)."""
        return self.slot_source(port, key, part, like) if self.slot_source is not None else None

    def log_once(self, message: str) -> None:
        """``log`` unless this context already logged ``message`` (batches of one node share it)."""
        if message not in self.logs:
            self.log(message)

    def wait(self, seconds: float) -> None:
        """Sleep, waking early (and raising) on cancel or timeout."""
        end = self._clock() + seconds
        while True:
            self.check_cancelled()
            left = end - self._clock()
            if self.deadline is not None:
                left = min(left, self.deadline - self._clock() + 1e-3)
            if left <= 0:
                self.check_cancelled()
                return
            # no sleep(0) after the slice: it only gave the GIL away at the moment the wait ended
            # (up to a switch interval, 5 ms, of overshoot per sleep on a busy process)
            self.cancel_event.wait(min(left, 0.05))


class Agent:
    """Base class of running agents. Subclasses override ``run`` (and ``load``/``unload``).

    ``params`` is the validated parameter model of the node.
    """

    spec: ClassVar[AgentSpec]

    def __init__(self, params: BaseModel) -> None:
        self.params = params
        self.device = "cpu"

    def load(self, device: str) -> None:
        """Load weights onto ``device`` (``cpu`` or ``cuda:N``). Called once before runs."""
        self.device = device

    def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
        """Process ``inputs`` (by input port name) and return outputs (by output port name)."""
        raise NotImplementedError

    def run_batch(self, inputs: dict[str, Any], ctx: RunContext, start: int) -> dict[str, Any]:
        """Itemwise agents only (``itemwise=True``): the outputs for one batch of items.

        ``inputs`` are already cut to the batch (``engine.payloads``) and ``start`` is the index of
        its first item in the whole input. Must not depend on other batches: the engine may run
        batches at once on several threads, or fuse this agent with its neighbours so that each
        batch goes through all of them before the next (``engine.fusion``).
        """
        raise NotImplementedError

    def finish(self, inputs: dict[str, Any], outputs: dict[str, Any], ctx: RunContext) -> None:
        """Itemwise agents only: called once after all batches with the whole inputs and the
        joined outputs (logs over the whole set, e.g. accuracy against ground truth). In a fused
        chain whose previous node does not keep its outputs (``execution.keep_outputs`` off),
        ``inputs`` holds that node's payloads without their per-item fields (``classes`` and the
        like stay; ``engine.payloads.ITEM_FIELDS``)."""

    def unload(self) -> None:
        """Free what ``load`` took."""


@dataclass(frozen=True)
class ParamMigration:
    """How an agent's parameters changed in version ``since``: ``change`` turns the params of a node
    written for an older version into the new form (rename a key, convert a value). It must leave
    params already in the new form as they are: a node whose version is unknown gets every change.
    ``note`` says what changed, for people ("renamed threshold to min_confidence")."""

    since: str
    note: str
    change: Callable[[dict[str, Any]], dict[str, Any]]


@dataclass(frozen=True)
class AgentSpec:
    """An agent registered as a service.

    Attributes:
        name: dotted name, e.g. ``vision.classify``.
        version: the agent's version string.
        category: palette group (``vision``, ``text``, ``tabular``, ``recommendation``, ``flow``,
            ``simulation``, ``testing``).
        description: one or two sentences for people.
        inputs, outputs: typed ports.
        params: pydantic model of the parameters (defaults, ranges, enums, help).
        resources: default resource demand; nodes may override fields.
        expected_duration_s: expected wall time of one run on the declared resources (with
            ``per_item_s``: the part that does not grow with the items).
        lifecycle: default lifecycle rules; nodes may override them.
        factory: builds the running Agent from validated params.
        duration_fn: expected duration for given params (overrides ``expected_duration_s``).
        simulated: does no real work; takes its declared duration (planner virtual clock,
            executor real time).
        card: model card text (Markdown) for agents backed by a trained model.
        label: short human name for the palette.
        color: palette colour.
        cacheable: whether a stored result may stand in for running it again; False for agents
            whose point is a side effect (writing a file), so a re-run or resume writes again.
        itemwise: each output item depends only on the same input item; the agent implements
            ``run_batch`` (and may implement ``finish``), so the engine can fuse it with itemwise
            neighbours and run the chain batch by batch (``engine.fusion``).
        per_item_s: expected seconds per item it handles (received; for a source, emitted: see
            ``items_fn``), added to the fixed part when the planner knows how many items will
            come (``engine.items``); ``TYPICAL_ITEMS`` when not.
        per_item_fn: the same for agents whose time per item depends on their params (a model
            trained for ``epochs`` passes over its input); replaces ``per_item_s``.
        items_fn: how many items the node emits, from its params and the items on its inputs
            (None: unknown); or ``{output port: count}`` for an agent whose outputs differ in
            size (a log of events and a table of its users). Without it a node with inputs
            passes their count on and a source's count is unknown.
        keys_fn: how many distinct values the key columns of its output hold (customers in a
            transaction table, users and items in an interaction log): ``{column: count}``, or
            ``{output port: {column: count}}`` for an agent with several outputs, from its params
            and the keys planned for each connected input, in edge order. ``engine.kinds.ENTITY``
            counts the groups a scores payload's ``entities`` put its rows in (by default its
            rows). Counts are upper bounds. Without it the output's keys are unknown.
        groups_fn: for agents that emit one item per group of what they receive (one risk per
            customer, features per item, scores per user): how many items they emit, from their
            params and the keys planned for each connected input (``keys_fn``), in edge order;
            or ``{output port: count}``; None where unknown. Where it knows, it replaces
            ``items_fn``'s count, which can only see how many items arrive.
        memory_per_item_mb: memory that grows with the items the node handles (received, or
            emitted by a source), added to ``resources.memory_mb`` (``TYPICAL_ITEMS`` when
            unknown), unless the node sets its own ``memory_mb``.
        memory_fn: the same for agents whose memory per item depends on their params: MB on top
            of ``resources.memory_mb`` for (params, items handled, ``TYPICAL_ITEMS`` when
            unknown); replaces ``memory_per_item_mb``.
        files_fn: for agents that read files named in their params: ``(parameter, paths)`` for
            these params, or None when they read none (e.g. a generated data set). Validation
            reports a node that names no file, or a file missing on this machine
            (``missing_file``), before the run rather than when the agent starts.
        file_check_fn: for agents that read files: what is wrong with the files these params
            name, in the reader's own words ("t.csv, line 3: 2 field(s) but the header has 3"), or
            None. Validation calls it once the files exist (``unreadable_file``), so a bad file is
            reported before anything runs; read each version of a file once (cache by path, size
            and modification time).
        kinds_fn: for agents whose ports carry what their params say (``custom.model``):
            ``{port: (kind, parameter)}`` for these params. Validation checks edges against these
            kinds (an ``any`` port in the spec) and names the parameter in its hint.
        shape_fn: for agents that emit images: the (channels, height, width) of one image they
            emit, from their params and the shape they receive (None: unknown). Without it an
            agent with an image or ``any`` output passes the shape it receives on (a filter, a
            limit; not a model whose ports its params decide: ``kinds_fn``); the planner follows
            shapes as it follows item counts (``engine.items``).
        columns_fn: for agents whose output's columns are known before the run: the columns of
            the table it emits, or that its scores, labels, texts or vectors read as
            (``engine.agents.tables.to_table``), from the params and the columns on each connected
            input, in edge order (None where unknown); None: unknown. A table source says its
            data set's, a join what it gives, a limit or branch what it receives, a classifier
            its prediction, confidence and one score per class. An agent with several outputs
            gives ``{output port: columns or None}``. A column that only some runs have (the
            ground truth, where the data may carry it) is listed: the planned columns are all a
            run can give, so a column a reader needs and they lack is surely missing. Without it
            the columns are unknown (a custom model's output), and nothing after it is checked.
        values_fn: for agents whose output columns hold a known set of names (a ticket's
            priority, a threshold's decision): ``{output port: {column: values}}`` from the params
            and what each connected input's columns hold, in edge order (None where unknown). A
            limit or branch passes its input's on. A scores table's ``predicted`` and ``label``
            hold its classes without one (``engine.items.PlannedItems.values_on``). Validation
            warns of a condition naming none of them (``never_matches``), and the designer offers
            them as a branch's value.
        needs_columns_fn: the columns every table arriving on its inputs must have, for these
            params (a scorer's features, a branch's field), or ``{input port: columns}`` for an
            agent whose inputs need different ones (a ranker's item table and its log).
            Validation reports the ones a connected table is known to lack
            (``missing_columns``) before anything runs.
        needs_classes_fn: the classes every scores payload arriving on its inputs must have, for
            these params (a threshold's ``score_class``). Validation reports one the planned
            scores lack (``unknown_class``), their classes read from their columns
            (``engine.kinds.score_classes``).
        match_check_fn: for agents that select rows by a condition (a branch): why no row of a
            table with these planned columns, whose columns hold these known values
            (``values_fn``), can meet the condition these params set (message, hint), or None. Validation warns (``never_matches``): a class name typed wrong, or a
            column of class names compared with a number, would send every row to ``rest``.
        needs_shape_fn: the (channels, height, width) each image arriving on its inputs must have,
            for these params (None in a place: any size there; None: any image), e.g. a user's
            ONNX model exported for 3 x 32 x 32 images. Validation reports planned images of
            another size (``image_size_mismatch``) before anything runs.
        per_image_fn: for agents whose work or memory grows with the size of each image:
            ``(seconds, MB)`` per item on top of ``per_item_s`` and ``memory_fn``, for these
            params and the planned ``ImageSizes`` (a 512 px image costs far more than a 64 px one);
            or ``(seconds, MB, MB once)`` for memory held per batch rather than per item (a CNN
            resizing a batch of large images down to its input).
        gpu_memory_fn: for agents that may run on a GPU: ``(MB once, MB per item in flight)`` of
            GPU memory for these params and the planned ``ImageSizes``, measured on a GPU
            (``bench/gpu/memory.py``). A node placed on a GPU reserves the once part plus the per
            item part for the items of one batch (all its items where it has no batch size),
            unless it sets ``gpu_memory_mb`` itself (``demand_for``).
        migrations: how its parameters changed between versions (``ParamMigration``), so a
            workflow saved for an older version still runs, its params upgraded
            (``engine.versions.upgrade``) and the change named (``agent_upgraded``).
    """

    name: str
    version: str
    category: str
    description: str
    inputs: tuple[PortSpec, ...] = ()
    outputs: tuple[PortSpec, ...] = ()
    params: type[BaseModel] = NoParams
    resources: ResourceDemand = field(default_factory=ResourceDemand)
    expected_duration_s: float = 1.0
    lifecycle: Lifecycle = field(default_factory=Lifecycle)
    factory: Callable[[BaseModel], Agent] | None = None
    duration_fn: Callable[[BaseModel], float] | None = None
    simulated: bool = False
    card: str | None = None
    label: str | None = None
    color: str | None = None
    cacheable: bool = True
    itemwise: bool = False
    per_item_s: float = 0.0
    per_item_fn: Callable[[BaseModel], float] | None = None
    items_fn: Callable[[BaseModel, int | None], int | Mapping[str, int | None] | None] | None = None
    memory_per_item_mb: float = 0.0
    memory_fn: Callable[[BaseModel, int], float] | None = None
    files_fn: Callable[[BaseModel], tuple[str, list[str]] | None] | None = None
    file_check_fn: Callable[[BaseModel], str | None] | None = None
    kinds_fn: Callable[[BaseModel], dict[str, tuple[DataKind, str]]] | None = None
    shape_fn: Callable[[BaseModel, ImageShape | None], ImageShape | None] | None = None
    per_image_fn: Callable[[BaseModel, ImageSizes], tuple[float, ...]] | None = None
    gpu_memory_fn: Callable[[BaseModel | None, ImageSizes], tuple[float, float]] | None = None
    columns_fn: Callable[[BaseModel, list[tuple[str, ...] | None]],
                         Iterable[str] | Mapping[str, Iterable[str]] | None] | None = None
    needs_columns_fn: Callable[[BaseModel], tuple[str, ...] | Mapping[str, tuple[str, ...]]] | None = None
    needs_shape_fn: Callable[[BaseModel], NeededShape | None] | None = None
    needs_classes_fn: Callable[[BaseModel], tuple[str, ...]] | None = None
    match_check_fn: Callable[[BaseModel, tuple[str, ...], Mapping[str, tuple[str, ...]]],
                             tuple[str, str] | None] | None = None
    values_fn: Callable[[BaseModel, list[Mapping[str, tuple[str, ...]] | None]],
                        Mapping[str, Mapping[str, Iterable[str]]] | None] | None = None
    keys_fn: Callable[[BaseModel, list[Mapping[str, int]]],
                      Mapping[str, int] | Mapping[str, Mapping[str, int]] | None] | None = None
    groups_fn: Callable[[BaseModel, list[Mapping[str, int]]], int | Mapping[str, int | None] | None] | None = None
    migrations: tuple[ParamMigration, ...] = ()

    def input(self, name: str) -> PortSpec | None:
        return next((p for p in self.inputs if p.name == name), None)

    def output(self, name: str) -> PortSpec | None:
        return next((p for p in self.outputs if p.name == name), None)

    def parse_params(self, raw: Mapping[str, Any] | None) -> BaseModel:
        """Validate raw parameters. Raises pydantic's ``ValidationError`` on bad values."""
        return self.params.model_validate(dict(raw or {}))

    def expected_duration(self, params: BaseModel | None = None, items: int | None = None, *,
                          images: ImageSizes | None = None) -> float:
        """Expected duration in seconds for these params and ``items`` input items (declared or
        computed; a source counts what it emits for these params), with the images' planned
        sizes for agents whose time grows with them (``per_image_fn``); agents without a time
        per item ignore ``items``."""
        base = float(self.duration_fn(params)) if self.duration_fn is not None and params is not None \
            else self.expected_duration_s
        per_item = self.seconds_per_item(params) + self.image_cost(params, images)[0]
        if per_item:
            if items is None and not self.inputs:  # a source: the items it emits
                items = self.items_out(params, None)
            base += per_item * (TYPICAL_ITEMS if items is None else max(0, items))
        return base

    def seconds_per_item(self, params: BaseModel | None = None) -> float:
        """The declared seconds per input item for these params (``per_item_fn`` when the agent
        has one and ``params`` are given, else ``per_item_s``)."""
        if self.per_item_fn is not None and params is not None:
            return float(self.per_item_fn(params))
        return self.per_item_s

    def image_cost(self, params: BaseModel | None, images: ImageSizes | None) -> tuple[float, float, float]:
        """(seconds per item, MB per item, MB once) that the images' sizes add (``per_image_fn``);
        zeros for agents without one. Unknown sizes are the agent's to assume (``images`` None:
        both unknown)."""
        if self.per_image_fn is None or params is None:
            return 0.0, 0.0, 0.0
        seconds, mb, *once = self.per_image_fn(params, images or ImageSizes())
        return max(0.0, float(seconds)), max(0.0, float(mb)), max(0.0, float(once[0])) if once else 0.0

    def emitted_shape(self, params: BaseModel | None, received: ImageShape | None) -> ImageShape | None:
        """The shape of one image the node emits (``shape_fn``; else what it receives, if it has
        an image or ``any`` output whose kind its params do not decide; else None)."""
        if self.shape_fn is not None:
            return None if params is None else self.shape_fn(params, received)
        if self.kinds_fn is None and any(p.kind in (DataKind.IMAGE_BATCH, DataKind.ANY) for p in self.outputs):
            return received
        return None

    def emitted_columns(self, params: BaseModel | None, received: list[tuple[str, ...] | None]
                        ) -> tuple[str, ...] | dict[str, tuple[str, ...]] | None:
        """The columns of the table the node emits, in order, or ``{output port: columns}`` for
        an agent with several table outputs (``columns_fn``; None: unknown)."""
        if self.columns_fn is None or params is None:
            return None
        columns = self.columns_fn(params, received)
        if isinstance(columns, Mapping):
            return {port: tuple(dict.fromkeys(cols)) for port, cols in columns.items() if cols is not None}
        return None if columns is None else tuple(dict.fromkeys(columns))

    def emitted_values(self, params: BaseModel | None, received: list[Mapping[str, tuple[str, ...]] | None]
                       ) -> dict[str, dict[str, tuple[str, ...]]]:
        """``{output port: {column: the names it can hold}}`` where the agent knows them
        (``values_fn``; empty: none known)."""
        if self.values_fn is None or params is None:
            return {}
        found = self.values_fn(params, received) or {}
        return {port: {c: tuple(dict.fromkeys(str(v) for v in vals)) for c, vals in cols.items()}
                for port, cols in found.items() if cols is not None}

    def emitted_keys(self, params: BaseModel | None, received: list[Mapping[str, int]]
                     ) -> dict[str, dict[str, int]]:
        """``{output port: {key column: distinct values}}`` where the agent knows them
        (``keys_fn``; empty: none known)."""
        if self.keys_fn is None or params is None:
            return {}
        found = self.keys_fn(params, received) or {}
        if all(isinstance(v, Mapping) for v in found.values()) and found:
            per_port: Mapping[str, Mapping[str, int]] = found  # type: ignore[assignment]
        else:
            per_port = {p.name: found for p in self.outputs}  # type: ignore[misc]
        return {port: {c: max(0, int(n)) for c, n in keys.items() if n is not None}
                for port, keys in per_port.items() if keys}

    def grouped_items(self, params: BaseModel | None, received: list[Mapping[str, int]]
                      ) -> dict[str, int]:
        """The items leaving each output port when the agent emits one per group of its inputs
        (``groups_fn``; only the ports it can count)."""
        if self.groups_fn is None or params is None:
            return {}
        counts = self._per_port(self.groups_fn(params, received))
        return {port: n for port, n in counts.items() if n is not None}

    def needed_columns(self, params: BaseModel | None, port: str) -> tuple[str, ...]:
        """The columns a table arriving on input ``port`` must have for these params
        (``needs_columns_fn``; none when the params are unknown)."""
        if self.needs_columns_fn is None or params is None:
            return ()
        needed = self.needs_columns_fn(params)
        return tuple(needed.get(port, ()) if isinstance(needed, Mapping) else needed)

    @property
    def memory_grows(self) -> bool:
        """Whether the declared memory depends on the items planned or the images' sizes."""
        return bool(self.memory_per_item_mb or self.memory_fn or self.per_image_fn)

    @property
    def grows_with_items(self) -> bool:
        """Whether the declared time or memory depends on the number of items planned."""
        return bool(self.per_item_s or self.per_item_fn or self.memory_per_item_mb or self.memory_fn
                    or self.per_image_fn)

    def demand_for(self, overrides: Mapping[str, Any] | None, params: BaseModel | None = None,
                   items: int | None = None, *, images: ImageSizes | None = None,
                   lifecycle: Mapping[str, Any] | None = None) -> ResourceDemand:
        """A node's demand: the agent's, with the memory that grows with ``items`` (the items the
        node handles, see ``memory_per_item_mb``) and with the images' sizes (``per_image_fn``),
        and the GPU memory it takes on a GPU for one batch (``gpu_memory_mb``; the batch size is
        the node's ``lifecycle``'s, or the agent's), then the node's overrides (a ``memory_mb``
        or ``gpu_memory_mb`` of its own replaces the figure worked out). Raises CapacityError
        for a bad override."""
        extra = 0.0
        n = TYPICAL_ITEMS if items is None else max(0, items)
        if self.memory_fn is not None and params is not None:
            extra = float(self.memory_fn(params, n))
        elif self.memory_per_item_mb:
            extra = self.memory_per_item_mb * n
        _, per_item_mb, once_mb = self.image_cost(params, images)
        extra += per_item_mb * n + once_mb
        base = self.resources
        update: dict[str, float] = {}
        if extra > 0:
            update["memory_mb"] = base.memory_mb + extra
        if (gpu := self.gpu_memory_mb(params, n, images, lifecycle)) > 0:
            update["gpu_memory_mb"] = base.gpu_memory_mb + gpu
        if update:
            base = base.model_copy(update=update)
        return base.merged(overrides)

    def gpu_memory_mb(self, params: BaseModel | None, items: int, images: ImageSizes | None = None,
                      lifecycle: Mapping[str, Any] | None = None) -> float:
        """The GPU memory a node of this agent takes on a GPU for ``items`` items (``gpu_memory_fn``:
        once, plus per item for one batch of the node's ``lifecycle``); 0 for CPU-only agents."""
        declared = self._gpu_declared(params, images)
        if declared is None:
            return 0.0
        batch = self.lifecycle.execution.batch_size
        if lifecycle:
            with contextlib.suppress(ValidationError):  # validation names a bad lifecycle
                batch = self.lifecycle.merged(lifecycle).execution.batch_size
        in_flight = max(1, items if batch is None else min(items, batch))
        return declared[0] + declared[1] * in_flight

    def _gpu_declared(self, params: BaseModel | None, images: ImageSizes | None) -> tuple[float, float] | None:
        """``gpu_memory_fn``'s (MB once, MB per item in flight), never negative; None for agents
        that declare none (or never run on a GPU)."""
        if self.gpu_memory_fn is None or self.resources.device == "cpu":
            return None
        once, per_item = self.gpu_memory_fn(params, images or ImageSizes())
        return max(0.0, float(once)), max(0.0, float(per_item))

    def gpu_memory_parts(self, params: BaseModel | None = None,
                         images: ImageSizes | None = None) -> tuple[float, float] | None:
        """(MB once, MB per item in flight) declared for a node on a GPU (the agent's fixed
        ``gpu_memory_mb`` in the once part), for ``params`` (the defaults when not given) and
        ``images`` (the agent's reference ones when not given); None for agents without."""
        declared = self._gpu_declared(params if params is not None else self.default_params(), images)
        return None if declared is None else (declared[0] + self.resources.gpu_memory_mb, declared[1])

    def gpu_memory_text(self, params: BaseModel | None = None) -> str:
        """The GPU memory declared for a node on a GPU, for people: ``32 MB + 0.25 MB per item of a
        batch (32 by default)``; "" for agents that declare none."""
        parts = self.gpu_memory_parts(params)
        if parts is None:
            return ""
        once, per_item = parts
        text = f"{once:,.0f} MB"
        if per_item:
            batch = self.lifecycle.execution.batch_size
            text += f" + {per_item:.2g} MB per item " + (f"of a batch ({batch} by default)" if batch
                                                         else "(all its items at once)")
        return text

    def default_params(self) -> BaseModel | None:
        """The parameters at their defaults (None when some parameter has no default)."""
        try:
            return self.parse_params(None)
        except ValidationError:
            return None

    def duration_text(self, params: BaseModel | None = None) -> str:
        """The declared time for people, for ``params`` (the defaults when not given):
        ``0.075 s + 0.4 ms per item`` (or ``0.5 s``)."""
        params = params if params is not None else self.default_params()
        fixed, per_item = self.expected_duration(params, 0), self.seconds_per_item(params)
        text = f"{fixed:.4g} s"
        return f"{text} + {per_item * 1000:.3g} ms per item" if per_item else text

    def memory_growth_text(self) -> str:
        """How the declared memory grows with the data, for people (``2kB/item``; "" if not)."""
        if self.memory_fn is not None:
            return "data-sized"
        if self.memory_per_item_mb:
            kb = self.memory_per_item_mb * 1024
            return f"{kb:.2g}kB/item" if kb < 1024 else f"{self.memory_per_item_mb:.2g}MB/item"
        return ""

    def items_out(self, params: BaseModel | None, items_in: int | None,
                  ports: Mapping[str, int | None] | None = None) -> int | None:
        """How many items the node emits (None: unknown; the most of any port where the agent
        counts its ports apart); see ``items_fn``. ``ports``: ``port_items`` for the same
        arguments, when the caller has it (``items_fn`` may read a file)."""
        counts = list((self.port_items(params, items_in) if ports is None else ports).values())
        if not counts:  # no output ports: what it would pass on
            return items_in if self.inputs and self.items_fn is None else None
        return None if None in counts else max(n for n in counts if n is not None)

    def port_items(self, params: BaseModel | None, items_in: int | None) -> dict[str, int | None]:
        """How many items leave by each output port (None: unknown); see ``items_fn``."""
        n: int | Mapping[str, int | None] | None = items_in if self.inputs else None
        if self.items_fn is not None:
            n = None if params is None else self.items_fn(params, items_in)
        return self._per_port(n)

    def _per_port(self, n: int | Mapping[str, int | None] | None) -> dict[str, int | None]:
        """A count (or ``{output port: count}``) as each output port's count (None: unknown)."""
        if isinstance(n, Mapping):
            return {p.name: (None if (c := n.get(p.name)) is None else max(0, int(c))) for p in self.outputs}
        return {p.name: None if n is None else max(0, int(n)) for p in self.outputs}

    def build(self, params: BaseModel) -> Agent:
        if self.factory is None:
            raise TypeError(f"agent {self.name!r} has no factory")
        return self.factory(params)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly description (CLI ``agents --json``, the UI palette)."""
        return {
            "name": self.name,
            "version": self.version,
            "category": self.category,
            "label": self.label or self.name,
            "description": self.description,
            "inputs": [_port_dict(p) for p in self.inputs],
            "outputs": [_port_dict(p) for p in self.outputs],
            "params_schema": self.params.model_json_schema(),
            "resources": self.resources.model_dump(),
            "expected_duration_s": self.expected_duration_s,
            "per_item_s": self.seconds_per_item(self.default_params()),
            "lifecycle": self.lifecycle.model_dump(),
            "simulated": self.simulated,
            "has_card": self.card is not None,
            "migrations": [{"since": m.since, "note": m.note} for m in self.migrations],
        }


def _port_dict(port: PortSpec) -> dict[str, Any]:
    return {
        "name": port.name,
        "kind": port.kind.value,
        "description": port.description,
        "required": port.required,
        "multiple": port.multiple,
        **({"accepts": [k.value for k in port.accepts]} if port.accepts else {}),
    }


def params_error_details(exc: ValidationError) -> list[tuple[str, Any, str]]:
    """(field, value, constraint message) for each problem in a parameter ValidationError."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(params)"
        out.append((loc, err.get("input"), err["msg"]))
    return out
