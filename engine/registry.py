"""The agent registry: built-in agents, the ``@agent`` decorator, and third-party entry points.

Third-party packages expose agents through the entry-point group ``servicegrid.agents``; an
entry may point at a module (every decorated agent in it is registered), an Agent class, an
AgentSpec, or a callable returning AgentSpecs. Nothing sent from a browser can add an agent.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from importlib.metadata import entry_points
from types import ModuleType
from typing import Any

from pydantic import BaseModel

from engine.errors import AgentNotFoundError
from engine.kinds import DataKind
from engine.resources import ResourceDemand
from engine.spec import (
    Agent,
    AgentSpec,
    ImageShape,
    ImageSizes,
    Lifecycle,
    NeededShape,
    NoParams,
    ParamMigration,
    PortSpec,
)

ENTRY_POINT_GROUP = "servicegrid.agents"
BUILTIN_MODULES = (
    "engine.agents.sim",
    "engine.agents.testing",
    "engine.agents.flow",
    "engine.agents.vision",
    "engine.agents.text",
    "engine.agents.tabular",
    "engine.agents.recommend",
    "engine.agents.custom",
)
log = logging.getLogger(__name__)


def agent(
    name: str,
    *,
    version: str = "1.0",
    category: str,
    description: str,
    inputs: Iterable[PortSpec] = (),
    outputs: Iterable[PortSpec] = (),
    params: type[BaseModel] = NoParams,
    resources: ResourceDemand | None = None,
    expected_duration_s: float = 1.0,
    lifecycle: Lifecycle | None = None,
    duration_fn: Callable[[BaseModel], float] | None = None,
    simulated: bool = False,
    card: str | None = None,
    label: str | None = None,
    color: str | None = None,
    cacheable: bool = True,
    itemwise: bool = False,
    per_item_s: float = 0.0,
    per_item_fn: Callable[[BaseModel], float] | None = None,
    items_fn: Callable[[BaseModel, int | None], int | None] | None = None,
    memory_per_item_mb: float = 0.0,
    memory_fn: Callable[[BaseModel, int], float] | None = None,
    files_fn: Callable[[BaseModel], tuple[str, list[str]] | None] | None = None,
    file_check_fn: Callable[[BaseModel], str | None] | None = None,
    kinds_fn: Callable[[BaseModel], dict[str, tuple[DataKind, str]]] | None = None,
    shape_fn: Callable[[BaseModel, ImageShape | None], ImageShape | None] | None = None,
    per_image_fn: Callable[[BaseModel, ImageSizes], tuple[float, ...]] | None = None,
    gpu_memory_fn: Callable[[BaseModel | None, ImageSizes], tuple[float, float]] | None = None,
    columns_fn: Callable[[BaseModel, list[tuple[str, ...] | None]],
                         Iterable[str] | Mapping[str, Iterable[str]] | None] | None = None,
    needs_columns_fn: Callable[[BaseModel], tuple[str, ...] | Mapping[str, tuple[str, ...]]] | None = None,
    needs_shape_fn: Callable[[BaseModel], NeededShape | None] | None = None,
    needs_classes_fn: Callable[[BaseModel], tuple[str, ...]] | None = None,
    match_check_fn: Callable[[BaseModel, tuple[str, ...], Mapping[str, tuple[str, ...]]],
                             tuple[str, str] | None] | None = None,
    values_fn: Callable[[BaseModel, list[Mapping[str, tuple[str, ...]] | None]],
                        Mapping[str, Mapping[str, Iterable[str]]] | None] | None = None,
    keys_fn: Callable[[BaseModel, list[Mapping[str, int]]],
                      Mapping[str, int] | Mapping[str, Mapping[str, int]] | None] | None = None,
    groups_fn: Callable[[BaseModel, list[Mapping[str, int]]], int | Mapping[str, int | None] | None] | None = None,
    migrations: Iterable[ParamMigration] = (),
) -> Callable[[type[Agent]], type[Agent]]:
    """Class decorator that declares an Agent subclass as a service.

    Example:
        >>> @agent("demo.echo", category="testing", description="Returns its input.",
        ...        inputs=[PortSpec("data", DataKind.ANY)], outputs=[PortSpec("data", DataKind.ANY)])
        ... class Echo(Agent):
        ...     def run(self, inputs, ctx):
        ...         return {"data": inputs["data"]}
    """

    inputs, outputs = tuple(inputs), tuple(outputs)

    def wrap(cls: type[Agent]) -> type[Agent]:
        if itemwise and (cls.run_batch is Agent.run_batch or not inputs):
            raise TypeError(f"agent {name!r} is declared itemwise: it needs an input port and a "
                            f"run_batch method (see Agent.run_batch)")
        cls.spec = AgentSpec(
            name=name,
            version=version,
            category=category,
            description=description,
            inputs=tuple(inputs),
            outputs=tuple(outputs),
            params=params,
            resources=resources or ResourceDemand(),
            expected_duration_s=expected_duration_s,
            lifecycle=lifecycle or Lifecycle(),
            factory=cls,
            duration_fn=duration_fn,
            simulated=simulated,
            card=card,
            label=label,
            color=color,
            cacheable=cacheable,
            itemwise=itemwise,
            per_item_s=per_item_s,
            per_item_fn=per_item_fn,
            items_fn=items_fn,
            memory_per_item_mb=memory_per_item_mb,
            memory_fn=memory_fn,
            files_fn=files_fn,
            file_check_fn=file_check_fn,
            kinds_fn=kinds_fn,
            shape_fn=shape_fn,
            per_image_fn=per_image_fn,
            gpu_memory_fn=gpu_memory_fn,
            columns_fn=columns_fn,
            needs_columns_fn=needs_columns_fn,
            needs_shape_fn=needs_shape_fn,
            needs_classes_fn=needs_classes_fn,
            match_check_fn=match_check_fn,
            values_fn=values_fn,
            keys_fn=keys_fn,
            groups_fn=groups_fn,
            migrations=tuple(migrations),
        )
        return cls

    return wrap


class Registry:
    """Agent specs by name. Thread-safe for reads after construction."""

    def __init__(self, specs: Iterable[AgentSpec] = ()) -> None:
        self._specs: dict[str, AgentSpec] = {}
        self._lock = threading.Lock()
        for spec in specs:
            self.register(spec)

    def register(self, item: AgentSpec | type[Agent], *, replace: bool = False) -> AgentSpec:
        """Add an AgentSpec (or a decorated Agent class). Duplicate names raise ValueError."""
        spec = item if isinstance(item, AgentSpec) else item.spec
        with self._lock:
            if spec.name in self._specs and not replace and self._specs[spec.name] is not spec:
                raise ValueError(f"agent {spec.name!r} is already registered")
            self._specs[spec.name] = spec
        return spec

    def register_module(self, module: ModuleType | str) -> list[AgentSpec]:
        """Register every decorated Agent class defined in ``module``."""
        if isinstance(module, str):
            module = importlib.import_module(module)
        found = []
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, Agent) and "spec" in obj.__dict__ and obj.__module__ == module.__name__:
                found.append(self.register(obj.spec, replace=True))
        return found

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> list[str]:
        """Register third-party agents; returns the names of entries that failed (logged)."""
        failed = []
        for ep in entry_points(group=group):
            try:
                self._register_object(ep.load())
            except Exception as exc:  # a broken plugin must not take the workbench down
                log.warning("agent plugin %r could not be loaded: %s", ep.name, exc)
                failed.append(ep.name)
        return failed

    def _register_object(self, obj: Any) -> None:
        if isinstance(obj, ModuleType):
            self.register_module(obj)
        elif isinstance(obj, AgentSpec) or (inspect.isclass(obj) and issubclass(obj, Agent)):
            self.register(obj, replace=True)
        elif callable(obj):
            for spec in obj():
                self.register(spec, replace=True)
        else:
            raise TypeError(f"entry point object {obj!r} is not an agent, spec or module")

    def get(self, name: str) -> AgentSpec:
        """The spec named ``name``; raises AgentNotFoundError with close names."""
        try:
            return self._specs[name]
        except KeyError:
            raise AgentNotFoundError(name, self._specs) from None

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[AgentSpec]:
        return iter(sorted(self._specs.values(), key=lambda s: (s.category, s.name)))

    def __len__(self) -> int:
        return len(self._specs)

    def names(self) -> list[str]:
        return sorted(self._specs)

    def categories(self) -> dict[str, list[AgentSpec]]:
        out: dict[str, list[AgentSpec]] = {}
        for spec in self:
            out.setdefault(spec.category, []).append(spec)
        return out


_default: Registry | None = None
_default_lock = threading.Lock()


def default_registry(*, plugins: bool = True) -> Registry:
    """The process-wide registry: built-in agents plus installed plugins (built once)."""
    global _default
    with _default_lock:
        if _default is None:
            reg = Registry()
            for module in BUILTIN_MODULES:
                try:
                    reg.register_module(module)
                except ModuleNotFoundError as exc:
                    if exc.name != module:  # a real missing dependency, not an absent family
                        raise
            if plugins:
                reg.load_entry_points()
            _default = reg
        return _default
