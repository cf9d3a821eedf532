"""The workflow file: nodes, edges, canvas positions and capacity, as immutable data.

JSON is the file and storage format (YAML is accepted on input); ``schema_version`` guards
the shape. ``load_workflow`` turns text into a ``Workflow`` or raises ``WorkflowFileError``
with the line or field at fault; ``dump_workflow`` writes it back losslessly.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from engine.errors import WorkflowFileError
from engine.resources import Capacity

SCHEMA_VERSION = 1
MAX_FILE_BYTES = 64 * 2**20  # a workflow file larger than this is refused before parsing
MAX_YAML_VALUES = 1_000_000  # values a YAML file's aliases may expand to (more if the file is that long)

_MODEL = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
_ID_PATTERN = r"^[^\x00-\x1f\x7f]{1,200}$"  # any printable text; the UI escapes it


class Position(BaseModel):
    """Where the canvas draws a node (pixels in canvas space)."""

    model_config = _MODEL
    x: float = Field(0.0, ge=-1e7, le=1e7)
    y: float = Field(0.0, ge=-1e7, le=1e7)


PIN_KEY_PATTERN = r"^[0-9a-f]{32}$"  # a result-cache key (engine.results.cache_key)


class PinSpec(BaseModel):
    """A node's pinned output: the run takes the node's outputs from the result cache under
    ``key`` instead of computing them, and does not run the nodes that only feed it (n8n's
    pinned data, Langflow's frozen path). The key is the node's result from an earlier run."""

    model_config = _MODEL
    key: str = Field(..., pattern=PIN_KEY_PATTERN, description="result-cache key of the pinned outputs")
    run_id: str | None = Field(None, max_length=64, description="the run the outputs came from")


class FaultSpec(BaseModel):
    """A fault drill: trouble a node makes on purpose, to teach what retries, timeouts and memory
    admission do (the first attempts fail, the agent starts late, it holds more memory than it
    declared). Its outputs are unchanged; a drilled node is never served from the cache."""

    model_config = _MODEL
    fail_attempts: int = Field(0, ge=0, le=100, description="the first N attempts fail (retries then recover)")
    delay_s: float = Field(0.0, ge=0, le=86400, description="real seconds to wait before the agent runs "
                           "(a slow or stuck service: timeouts, stragglers)")
    extra_memory_mb: float = Field(0.0, ge=0, le=65536, description="memory held while the agent runs, on "
                                   "top of its own (measured; an isolated node past its limit is stopped)")

    def describe(self) -> str:
        """"fails its first 2 attempts · waits 3 s · holds 500 MB more"."""
        parts = [("fails its first attempt" if self.fail_attempts == 1 else f"fails its first {self.fail_attempts} attempts")
                 if self.fail_attempts else "",
                 f"waits {self.delay_s:g} s" if self.delay_s else "",
                 f"holds {self.extra_memory_mb:,.0f} MB more" if self.extra_memory_mb else ""]
        return " · ".join(p for p in parts if p) or "no trouble set"

    def __bool__(self) -> bool:
        return bool(self.fail_attempts or self.delay_s or self.extra_memory_mb)


BreakOp = Literal["==", "!=", "<", "<=", ">", ">=", "contains", "in"]
BREAK_OPS: tuple[str, ...] = get_args(BreakOp)


def _field_text(field: str) -> str:
    """A condition's column as its text form writes it: quoted when it has spaces, an operator's
    sign or a quote (so ``engine.breaks.parse`` reads it back as the same column)."""
    if re.fullmatch(r"[^\s=!<>\"'`:]+", field):
        return field
    quote = next((q for q in ("'", '"', "`") if q not in field), "'")
    return f"{quote}{field}{quote}"


class BreakCondition(BaseModel):
    """A breakpoint's condition: the run pauses before the node only when some item (row) of one
    of its inputs meets ``field op value`` (``engine.breaks``); the comparison is declared, never
    code. Numbers compare as numbers; ``in`` takes a list or comma-separated values."""

    model_config = _MODEL
    port: str | None = Field(None, max_length=200, description="the input it tests (none: the node's only input)")
    field: str = Field(..., min_length=1, max_length=200,
                       description="a column of that input's table, or 'id' (scores: 'predicted', "
                                   "'confidence', 'score_<class>'; labels: 'label', 'confidence')")
    op: BreakOp = Field(">=", description="comparison")
    value: str | float | list[str] = Field(..., description="the value to compare with")

    def tested_port(self, names: list[str]) -> str | None:
        """The input it tests, of a node (or component) whose inputs are ``names``: the one it
        names, else the only one; None when it names none and there are several (or none)."""
        return self.port if self.port is not None else (names[0] if len(names) == 1 else None)

    def describe(self) -> str:
        """"intent: confidence < 0.6"."""
        if isinstance(self.value, list) or self.op == "in":  # a list: as "in" reads it (comma-separated)
            listed = self.value if isinstance(self.value, list) else str(self.value).split(",")
            value = ", ".join(str(v).strip() for v in listed)
        else:
            value = f"{self.value:g}" if isinstance(self.value, float) else repr(self.value)
        return f"{self.port + ': ' if self.port else ''}{_field_text(self.field)} {self.op} {value}"


class NodeSpec(BaseModel):
    """One node: an instance of an agent with its parameters and overrides."""

    model_config = _MODEL
    id: str = Field(..., pattern=_ID_PATTERN, description="unique node id")
    agent: str = Field(..., min_length=1, max_length=200, description="registered agent name")
    params: dict[str, Any] = Field(default_factory=dict, description="agent parameters")
    resources: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the agent's resource demand"
    )
    lifecycle: dict[str, Any] = Field(
        default_factory=dict, description="overrides of the agent's lifecycle rules"
    )
    label: str | None = Field(None, max_length=500)
    position: Position | None = None
    pin: PinSpec | None = Field(None, description="use these stored outputs instead of running the node")
    disabled: bool = Field(False, description="not run, nor anything after it (ComfyUI's mute)")
    bypass: bool = Field(False, description="not run: its one input goes straight to what it feeds (ComfyUI's bypass)")
    breakpoint: bool = Field(False, description="runs pause before it starts, once its inputs are ready "
                                                "(Step starts it, Resume goes on); on a component's node: "
                                                "before the nodes inside that its inputs feed")
    break_when: BreakCondition | None = Field(None, description="with a breakpoint: pause only when some "
                                              "item of an input meets this condition")
    faults: FaultSpec | None = Field(None, description="a fault drill for a lesson: failures, delay, extra memory")
    version: str | None = Field(None, pattern=r"^[0-9A-Za-z.+_-]{1,50}$",
                                description="the agent version its params were upgraded to (engine.versions)")

    @field_validator("params", "resources", "lifecycle")
    @classmethod
    def _json_values(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_finite(value)
        return value

    def params_key(self) -> str:
        """The params as canonical text: nodes with equal params have equal keys (one parse each)."""
        return json.dumps(self.params, sort_keys=True, default=str) if self.params else ""


class EdgeSpec(BaseModel):
    """A connection from an output port of one node to an input port of another."""

    model_config = _MODEL
    source: str = Field(..., min_length=1, max_length=200)
    target: str = Field(..., min_length=1, max_length=200)
    source_port: str | None = Field(None, max_length=200)
    target_port: str | None = Field(None, max_length=200)


NOTE_MAX_CHARS = 4000  # a note's text
MAX_NOTES = 200  # notes on one canvas
NOTE_WIDTH = (80.0, 2000.0)  # a note's width and height, pixels in canvas space
NOTE_HEIGHT = (40.0, 2000.0)
NoteColor = Literal["yellow", "blue", "green", "pink", "grey"]
NOTE_COLORS: tuple[str, ...] = get_args(NoteColor)


class NoteSpec(BaseModel):
    """A note on the canvas, for people reading the workflow (a lab's instructions, why a node is
    there); drawn large, behind the nodes, it frames a part of the graph (KNIME's annotations).
    It never runs: validation, plans and runs ignore notes."""

    model_config = _MODEL
    id: str = Field(..., pattern=_ID_PATTERN, description="unique note id")
    text: str = Field("", max_length=NOTE_MAX_CHARS, description="plain text (never rendered as HTML)")
    position: Position = Field(default_factory=Position)
    width: float = Field(220.0, ge=NOTE_WIDTH[0], le=NOTE_WIDTH[1], description="pixels in canvas space")
    height: float | None = Field(None, ge=NOTE_HEIGHT[0], le=NOTE_HEIGHT[1],
                                 description="pixels; none: as tall as its text")
    color: NoteColor = "yellow"
    folded: bool = Field(False, description="a frame drawn folded: the nodes inside it hidden behind its title")


COMPONENT_PREFIX = "component:"  # a node whose agent is "component:NAME" is an instance of component NAME
MAX_COMPONENTS = 200  # component definitions in one workflow
_COMPONENT_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_ .,()+&-]{0,99}$"  # no "/" or ":" (they join expanded ids)
PORT_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,99}$"  # a component port's name (engine.inside checks renames by it)


class ComponentPort(BaseModel):
    """A port of a component, and the port of a node inside it that it stands for. An input named
    more than once feeds every port it names (one text to an intent and an entity model)."""

    model_config = _MODEL
    name: str = Field(..., pattern=PORT_NAME, description="the port's name on the component")
    node: str = Field(..., min_length=1, max_length=200, description="a node inside the component")
    port: str | None = Field(None, max_length=200, description="that node's port (none: its only one)")


class ComponentSpec(BaseModel):
    """A reusable part of a graph (ComfyUI's subgraphs, KNIME's components, Node-RED's subflows):
    nodes and the wires between them, with the inputs and outputs it shows to the outside. A node
    whose agent is ``component:NAME`` is an instance; every instance runs the definition's nodes,
    as if they were drawn in its place (``engine.components.expand_components``)."""

    model_config = _MODEL
    name: str = Field(..., pattern=_COMPONENT_NAME, description="unique among the workflow's components")
    description: str = Field("", max_length=4000)
    nodes: tuple[NodeSpec, ...] = Field(..., min_length=1)
    edges: tuple[EdgeSpec, ...] = ()
    inputs: tuple[ComponentPort, ...] = ()
    outputs: tuple[ComponentPort, ...] = ()
    inputs_at: Position | None = Field(None, description="where the designer draws its Inputs when it is open "
                                       "(none: left of its nodes)")
    outputs_at: Position | None = Field(None, description="where the designer draws its Outputs when it is open "
                                        "(none: right of its nodes)")

    @field_validator("nodes")
    @classmethod
    def _plain_ids(cls, value: tuple[NodeSpec, ...]) -> tuple[NodeSpec, ...]:
        seen: set[str] = set()
        for node in value:
            if "/" in node.id:
                raise ValueError(f"node id {node.id!r} has a '/': inside a component ids may not "
                                 "(a run names them instance/node)")
            if node.id in seen:
                raise ValueError(f"two nodes of the component have the id {node.id!r}")
            seen.add(node.id)
        return value

    @field_validator("outputs")
    @classmethod
    def _unique_outputs(cls, value: tuple[ComponentPort, ...]) -> tuple[ComponentPort, ...]:
        names = [p.name for p in value]
        if len(set(names)) != len(names):
            raise ValueError(f"two outputs are named {next(n for n in names if names.count(n) > 1)!r}")
        return value


class Workflow(BaseModel):
    """A workflow: what the user draws. Immutable; a run is a separate object."""

    model_config = _MODEL
    schema_version: int = Field(SCHEMA_VERSION, description="file format version")
    name: str = Field("untitled", max_length=500)
    description: str = Field("", max_length=20000)
    nodes: tuple[NodeSpec, ...] = ()
    edges: tuple[EdgeSpec, ...] = ()
    capacity: Capacity | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    notes: tuple[NoteSpec, ...] = Field((), max_length=MAX_NOTES, description="sticky notes on the canvas")
    components: tuple[ComponentSpec, ...] = Field((), max_length=MAX_COMPONENTS,
                                                  description="reusable parts its nodes may be instances of")

    @field_validator("components")
    @classmethod
    def _unique_components(cls, value: tuple[ComponentSpec, ...]) -> tuple[ComponentSpec, ...]:
        seen: set[str] = set()
        for component in value:
            if component.name in seen:
                raise ValueError(f"two components are named {component.name!r}; rename one")
            seen.add(component.name)
        return value

    @field_validator("notes")
    @classmethod
    def _unique_notes(cls, value: tuple[NoteSpec, ...]) -> tuple[NoteSpec, ...]:
        seen: set[str] = set()
        for note in value:
            if note.id in seen:
                raise ValueError(f"two notes have the id {note.id!r}; give each note its own id")
            seen.add(note.id)
        return value

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, value: int) -> int:
        if value != SCHEMA_VERSION:
            newer = "newer than this ServiceGrid understands; upgrade servicegrid" if value > SCHEMA_VERSION else "not supported"
            raise ValueError(f"schema_version {value} is {newer} (this version reads {SCHEMA_VERSION})")
        return value

    def node(self, node_id: str) -> NodeSpec | None:
        return next((n for n in self.nodes if n.id == node_id), None)

    def node_ids(self) -> list[str]:
        return [n.id for n in self.nodes]

    def component(self, name: str) -> ComponentSpec | None:
        return next((c for c in self.components if c.name == name), None)

    def to_dict(self) -> dict[str, Any]:
        """The JSON document, keys in file order; fields at their defaults are omitted."""
        data: dict[str, Any] = {"schema_version": self.schema_version, "name": self.name}
        if self.description:
            data["description"] = self.description
        data["nodes"] = [n.model_dump(mode="json", exclude_defaults=True) for n in self.nodes]
        data["edges"] = [e.model_dump(mode="json", exclude_defaults=True) for e in self.edges]
        if self.notes:
            data["notes"] = [n.model_dump(mode="json", exclude_none=True, exclude={"folded"} if not n.folded else None)
                             for n in self.notes]
        if self.components:
            data["components"] = [c.model_dump(mode="json", exclude_defaults=True) for c in self.components]
        if self.capacity is not None:
            data["capacity"] = self.capacity.model_dump(mode="json", exclude_defaults=True)
        if self.metadata:
            data["metadata"] = self.metadata
        return data


def with_pin(workflow: Workflow, node_id: str, pin: PinSpec | None) -> Workflow:
    """``workflow`` with node ``node_id`` pinned to ``pin`` (None: unpinned)."""
    if workflow.node(node_id) is None:
        raise WorkflowFileError(f"no node {node_id!r} in workflow {workflow.name!r}",
                                hint=f"its nodes are: {', '.join(sorted(workflow.node_ids())[:20])}")
    return workflow.model_copy(update={"nodes": tuple(
        n.model_copy(update={"pin": pin}) if n.id == node_id else n for n in workflow.nodes)})


PARTIAL_KEY = "run_to"  # metadata of a partial workflow: the nodes it was cut for
DISABLED_KEY = "disabled"  # metadata of a run's workflow: the nodes left out as disabled or after one
BYPASSED_KEY = "bypassed"  # metadata of a run's workflow: the nodes bypassed (their input wired past them)


def without_bypassed(workflow: Workflow) -> Workflow:
    """``workflow`` with each bypassed node taken out and its one input wired straight to what it
    fed (ComfyUI's bypass: run the graph as if a preprocessing step were not there); its metadata
    names them (``bypassed``). Validation's ``bypass_not_possible`` says beforehand when a bypass
    cannot be wired (not exactly one wire in, or kinds that do not fit); such a node is kept."""
    by = [n.id for n in workflow.nodes if n.bypass and not n.disabled]
    if not by:
        return workflow
    edges, done = list(workflow.edges), []
    for node_id in by:
        ins = [e for e in edges if e.target == node_id]
        if len(ins) != 1:
            continue
        source = ins[0]
        outs = [e for e in edges if e.source == node_id]
        edges = [e for e in edges if node_id not in (e.source, e.target)]
        for out in outs:
            wire = EdgeSpec(source=source.source, source_port=source.source_port, target=out.target,
                            target_port=out.target_port)
            if wire not in edges:
                edges.append(wire)
        done.append(node_id)
    gone = set(done)
    return workflow.model_copy(update={
        "nodes": tuple(n for n in workflow.nodes if n.id not in gone), "edges": tuple(edges),
        "metadata": {**workflow.metadata, BYPASSED_KEY: done}})


def disabled_reach(workflow: Workflow) -> set[str]:
    """The nodes a run leaves out: the disabled ones and every node downstream of them."""
    off = [n.id for n in workflow.nodes if n.disabled]
    if not off:
        return set()
    from engine.graphs import descendants

    return descendants(off, ((e.source, e.target) for e in workflow.edges))


def without_disabled(workflow: Workflow) -> Workflow:
    """``workflow`` without its disabled nodes and every node downstream of them (what a run
    executes: ComfyUI's muted nodes, a branch switched off for now), the wires into them cut;
    its metadata names what was left out (``disabled``). The workflow itself when none is disabled."""
    gone = disabled_reach(workflow)
    if not gone:
        return workflow
    return _part(workflow, set(workflow.node_ids()) - gone,
                 DISABLED_KEY, [n.id for n in workflow.nodes if n.id in gone])


def _part(workflow: Workflow, keep: set[str], key: str, value: Any) -> Workflow:
    """The nodes ``keep`` of ``workflow`` and the wires between them, with ``metadata[key]`` set."""
    return workflow.model_copy(update={
        "nodes": tuple(n for n in workflow.nodes if n.id in keep),
        "edges": tuple(e for e in workflow.edges if e.source in keep and e.target in keep),
        "metadata": {**workflow.metadata, key: value}})


def upstream_workflow(workflow: Workflow, targets: list[str]) -> Workflow:
    """The part of ``workflow`` that ``targets`` need: those nodes, every node upstream of them and
    the wires between these ("run up to here", as Airflow runs a task with its upstream and Dagster
    materialises an asset's). Its metadata names the targets (``run_to``). A run of it computes
    the targets; the result cache keeps every node's results, so a whole run later reuses them.
    Raises WorkflowFileError naming an unknown target."""
    known = set(workflow.node_ids())
    if not targets:
        raise WorkflowFileError("no node to run up to", hint="name one or more of the workflow's nodes")
    for target in targets:
        if target not in known:
            raise WorkflowFileError(f"no node {target!r} in workflow {workflow.name!r}",
                                    hint=f"its nodes are: {', '.join(sorted(known)[:20])}")
    # imported here: engine.graphs loads networkx, which reading a workflow file does not need
    from engine.graphs import ancestors

    keep = ancestors(targets, ((e.source, e.target) for e in workflow.edges))
    return _part(workflow, keep, PARTIAL_KEY, list(dict.fromkeys(targets)))


def pinned_only_feeders(workflow: Workflow) -> set[str]:
    """The nodes a run need not compute because of pins: every path from them to a node without
    successors goes through a pinned node (their outputs reach only pinned nodes, which take
    theirs from the result cache). Nodes without successors are always needed."""
    if not any(n.pin is not None for n in workflow.nodes):
        return set()
    from engine.graphs import ancestors

    pinned = {n.id for n in workflow.nodes if n.pin is not None}
    ids = set(workflow.node_ids())
    wires = [(e.source, e.target) for e in workflow.edges if e.source in ids and e.target in ids]
    ends = ids - {source for source, _ in wires}
    # needed: the ends of the graph and whatever reaches them by live wires (a wire into a pinned
    # node carries nothing)
    return ids - ancestors(ends, ((s, t) for s, t in wires if t not in pinned))


def _check_finite(value: Any, path: str = "") -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{path or 'value'} is {value}; only finite numbers are allowed")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _check_finite(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _check_finite(v, f"{path}[{i}]")


def workflow_json_schema() -> dict[str, Any]:
    """The published JSON Schema of the workflow file."""
    schema = Workflow.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://servicegrid.dev/schema/workflow-v{SCHEMA_VERSION}.json"
    schema["title"] = "ServiceGrid workflow"
    return schema


def parse_document(text: str, *, fmt: str | None = None) -> Any:
    """Parse JSON (or YAML) text into Python data; raise WorkflowFileError with a line."""
    fmt = fmt or ("json" if text.lstrip()[:1] in ("{", "[") else "yaml")
    if fmt == "json":
        try:
            return json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise WorkflowFileError(
                f"the file is not valid JSON: {exc.msg}",
                location=f"line {exc.lineno}, column {exc.colno}",
                hint="check for a missing comma, quote or bracket near that place",
            ) from None
        except ValueError as exc:
            raise WorkflowFileError(str(exc), hint="use finite numbers only") from None
        except RecursionError:
            raise _too_deep() from None
    import yaml

    try:
        data = yaml.safe_load(text)
    except RecursionError:
        raise _too_deep() from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        location = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        problem = getattr(exc, "problem", None) or "cannot be parsed"
        raise WorkflowFileError(
            f"the file is neither valid JSON nor valid YAML: {problem}",
            location=location,
            hint="workflow files are JSON objects (YAML is accepted too)",
        ) from None
    limit = max(MAX_YAML_VALUES, len(text))
    if "*" in text and _more_values_than(data, limit):
        raise WorkflowFileError(
            f"the YAML expands to more than {limit:,} values through its aliases "
            "(*name repeating an &name anchor), or refers to itself",
            hint="write the repeated values out instead of nesting aliases in aliases")
    return data


def _more_values_than(data: Any, limit: int) -> bool:
    """Whether ``data`` holds more than ``limit`` values counted as written out: YAML aliases
    share one object however often they repeat, so a small file can stand for billions of
    values (and a self-referring one for infinitely many), which validation would then walk."""
    stack, seen = [data], 0
    while stack:
        value = stack.pop()
        seen += 1
        if seen > limit:
            return True
        if isinstance(value, Mapping):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list | tuple | set):
            stack.extend(value)
    return False


def _too_deep() -> WorkflowFileError:
    """The parsers and validators recurse once per nesting level: too deep is a file error."""
    return WorkflowFileError("the file nests lists or objects too deeply to be read",
                             hint="flatten the nested values (a few hundred levels at most)")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a workflow file; use finite numbers only")


def workflow_from_data(data: Any) -> Workflow:
    """Build a Workflow from parsed data; raise WorkflowFileError naming the field at fault."""
    if not isinstance(data, Mapping):
        raise WorkflowFileError(
            f"a workflow file must hold an object with `nodes` and `edges`, not {type(data).__name__}",
            hint='start from {"schema_version": 1, "name": "...", "nodes": [], "edges": []}',
        )
    if "schema_version" not in data:
        raise WorkflowFileError(
            "the file has no `schema_version`",
            location="schema_version",
            hint=f'add "schema_version": {SCHEMA_VERSION} at the top level',
        )
    try:
        return Workflow.model_validate(data)
    except RecursionError:
        raise _too_deep() from None
    except ValidationError as exc:
        err = exc.errors()[0]
        location = _loc(err["loc"])
        more = f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else ""
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = f"unknown field {str(err['loc'][-1])!r}"
        raise WorkflowFileError(
            f"{msg}{more}", location=location, hint=_hint_for(err)
        ) from None


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _hint_for(err: Mapping[str, Any]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        return "remove the field or check its spelling against the JSON Schema (`servicegrid schema`)"
    if kind == "missing":
        return "add the missing field"
    if kind.endswith("_type") or kind.endswith("_parsing"):
        return "check the value's type against the JSON Schema (`servicegrid schema`)"
    return "fix the value and try again"


WORKFLOW_SUFFIXES = (".json", ".yaml", ".yml")


def load_workflow(source: str | Path, *, fmt: str | None = None) -> Workflow:
    """Load a workflow from a path or from text. A one-line ``str`` ending in ``.json``,
    ``.yaml`` or ``.yml`` is a path (``load_workflow("examples/two-stage.json")``): no workflow
    text looks like that.

    Raises:
        OSError: the file cannot be read.
        WorkflowFileError: the content is not a valid workflow file.
    """
    if isinstance(source, str) and "\n" not in source and source.strip().lower().endswith(WORKFLOW_SUFFIXES):
        source = Path(source.strip())
    if isinstance(source, Path):
        if source.stat().st_size > MAX_FILE_BYTES:
            raise WorkflowFileError(
                f"{source.name} is {source.stat().st_size / 2**20:.0f} MB; "
                f"workflow files are limited to {MAX_FILE_BYTES // 2**20} MB",
                hint="split the workflow or remove embedded data",
            )
        text = source.read_text(encoding="utf-8", errors="strict")
        if fmt is None and source.suffix.lower() in (".yaml", ".yml"):
            fmt = "yaml"
    else:
        text = source
        if len(text) > MAX_FILE_BYTES:
            raise WorkflowFileError(
                f"the workflow text is larger than {MAX_FILE_BYTES // 2**20} MB",
                hint="split the workflow or remove embedded data",
            )
    return workflow_from_data(parse_document(text, fmt=fmt))


def dump_workflow(workflow: Workflow, *, fmt: str = "json") -> str:
    """Serialise a workflow (JSON with 2-space indent, or YAML)."""
    data = workflow.to_dict()
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"
