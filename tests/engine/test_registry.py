"""The agent registry: the decorator, duplicates, modules, entry-point plugins, did-you-mean."""

from __future__ import annotations

import types
from typing import Any

import pytest

import engine.registry as registry_module
from engine.errors import AgentNotFoundError
from engine.kinds import DataKind
from engine.registry import Registry, agent, default_registry
from engine.resources import ResourceDemand
from engine.spec import Agent, AgentSpec, PortSpec, RunContext


def make_agent(name: str, category: str = "demo") -> type[Agent]:
    @agent(name, category=category, description=f"{name} for tests",
           inputs=[PortSpec("data", DataKind.TEXT_BATCH)], outputs=[PortSpec("data", DataKind.TEXT_BATCH)],
           resources=ResourceDemand(cpu=2, memory_mb=64), expected_duration_s=0.5)
    class Upper(Agent):
        def run(self, inputs: dict[str, Any], ctx: RunContext) -> dict[str, Any]:
            return {"data": [s.upper() for s in inputs["data"]]}

    return Upper


def test_decorator_builds_a_spec_that_runs():
    cls = make_agent("demo.upper")
    spec = cls.spec
    assert (spec.name, spec.category, spec.resources.cpu, spec.expected_duration_s) == ("demo.upper", "demo", 2, 0.5)
    assert spec.input("data").kind is DataKind.TEXT_BATCH and spec.output("nope") is None
    instance = spec.build(spec.parse_params({}))
    assert instance.run({"data": ["a", "b"]}, RunContext()) == {"data": ["A", "B"]}
    assert spec.to_dict()["inputs"][0] == {"name": "data", "kind": "text_batch", "description": "",
                                           "required": True, "multiple": False}


def test_duplicate_names_are_refused_unless_replacing():
    reg = Registry()
    first = make_agent("demo.upper").spec
    reg.register(first)
    reg.register(first)  # the same spec again is harmless
    other = make_agent("demo.upper").spec
    with pytest.raises(ValueError, match=r"agent 'demo\.upper' is already registered"):
        reg.register(other)
    reg.register(other, replace=True)
    assert reg.get("demo.upper") is other and len(reg) == 1


def test_unknown_name_suggests_close_ones():
    reg = Registry([make_agent("vision.classify").spec, make_agent("vision.detect").spec])
    with pytest.raises(AgentNotFoundError) as info:
        reg.get("vision.clasify")
    assert info.value.suggestions == ["vision.classify"]
    assert str(info.value) == ("no agent named 'vision.clasify' is registered. Did you mean 'vision.classify'? "
                               "Run `servicegrid agents` to list the registered agents.")
    assert isinstance(info.value, LookupError)


def test_register_module_takes_only_decorated_agents_defined_there():
    reg = Registry()
    specs = reg.register_module("engine.agents.testing")
    assert {s.name for s in specs} >= {"test.echo", "test.sleep", "test.fail"}
    assert all(s.category == "testing" for s in specs)
    assert list(reg.categories()) == ["testing"]


class FakeEntryPoint:
    def __init__(self, name: str, obj: Any) -> None:
        self.name = name
        self._obj = obj

    def load(self) -> Any:
        if isinstance(self._obj, Exception):
            raise self._obj
        return self._obj


def test_entry_points_register_modules_classes_specs_and_factories(monkeypatch):
    module = types.ModuleType("plugin_module")
    module_cls = make_agent("plugin.from_module")
    module_cls.__module__ = "plugin_module"
    module.Agent1 = module_cls
    spec_only: AgentSpec = make_agent("plugin.spec").spec
    entries = [
        FakeEntryPoint("mod", module),
        FakeEntryPoint("cls", make_agent("plugin.cls")),
        FakeEntryPoint("spec", spec_only),
        FakeEntryPoint("factory", lambda: [make_agent("plugin.factory").spec]),
        FakeEntryPoint("broken", ImportError("missing dependency")),
        FakeEntryPoint("weird", 42),
    ]
    seen_groups = []

    def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
        seen_groups.append(group)
        return entries

    monkeypatch.setattr(registry_module, "entry_points", fake_entry_points)
    reg = Registry()
    failed = reg.load_entry_points()
    assert seen_groups == ["servicegrid.agents"]
    assert failed == ["broken", "weird"]
    assert reg.names() == ["plugin.cls", "plugin.factory", "plugin.from_module", "plugin.spec"]


def test_default_registry_has_the_builtins_and_is_built_once():
    reg = default_registry()
    assert {"sim.task", "test.echo", "test.hold_memory"} <= set(reg.names())
    assert default_registry() is reg
    assert reg.get("sim.task").simulated
