"""Agent versions in saved workflows: params written for an older version of an agent are upgraded
with the agent's migrations (``engine.spec.ParamMigration``), n8n's typeVersion and ComfyUI's node
versions in spirit, so a saved workflow keeps running when an agent changes its parameters.

``upgrade`` applies, to every node (those inside components too), each migration of its agent
newer than the version the node names (all of them when it names none: migrations leave params
already in the new form alone) and names the node's version when one changed its params.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.components import flatten
from engine.registry import Registry
from engine.spec import AgentSpec
from engine.workflow import NodeSpec, Workflow


@dataclass(frozen=True)
class Upgrade:
    """What ``upgrade`` did to one node: its agent's changes (``notes``) from ``was`` to ``now``."""

    node: str  # the node's id (``component name/node`` for a node inside a component's definition)
    agent: str
    was: str | None
    now: str
    notes: tuple[str, ...]


@dataclass(frozen=True)
class Newer:
    """A node upgraded for a newer version of its agent than this one (``saved`` > ``installed``)."""

    node: str
    agent: str
    saved: str
    installed: str


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """A sortable form of a version: ``"1.10"`` after ``"1.9"``; words sort after numbers."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.split(r"[.+_-]", version) if p)


def upgrade(workflow: Workflow, registry: Registry) -> tuple[Workflow, list[Upgrade]]:
    """``workflow`` with every node's params upgraded to its agent's version, and what changed.
    A workflow whose agents have no migrations comes back as it is (the same object)."""
    if not any((spec := _spec(n, registry)) is not None and spec.migrations for n in _all_nodes(workflow)):
        return workflow, []
    done: list[Upgrade] = []
    nodes = tuple(_upgraded(n, registry, n.id, done) for n in workflow.nodes)
    components = tuple(c.model_copy(update={"nodes": tuple(_upgraded(n, registry, f"{c.name}/{n.id}", done)
                                                         for n in c.nodes)}) for c in workflow.components)
    if not done:
        return workflow, []
    return workflow.model_copy(update={"nodes": nodes, "components": components}), done


def runnable(workflow: Workflow, registry: Registry) -> Workflow:
    """The workflow a run executes: params upgraded for the agents installed, components expanded
    (``engine.components.flatten``; raises ``WorkflowInvalidError`` for a broken component)."""
    return flatten(upgrade(workflow, registry)[0])


def newer_than_installed(workflow: Workflow, registry: Registry) -> list[Newer]:
    """The nodes upgraded for a newer version of their agent than the one installed here."""
    out = []
    for node in _all_nodes(workflow):
        spec = _spec(node, registry) if node.version is not None else None
        if spec is not None and version_key(node.version) > version_key(spec.version):  # type: ignore[arg-type]
            out.append(Newer(node.id, spec.name, node.version, spec.version))
    return out


def _upgraded(node: NodeSpec, registry: Registry, label: str, done: list[Upgrade]) -> NodeSpec:
    spec = _spec(node, registry)
    if spec is None or not spec.migrations:
        return node
    was = node.version
    params, notes = dict(node.params), []
    for migration in sorted(spec.migrations, key=lambda m: version_key(m.since)):
        if was is not None and version_key(migration.since) <= version_key(was):
            continue
        changed = migration.change(dict(params))
        if changed != params:
            params = changed
            notes.append(migration.note)
    if not notes:
        return node
    done.append(Upgrade(label, spec.name, was, spec.version, tuple(notes)))
    return node.model_copy(update={"params": params, "version": spec.version})


def _spec(node: NodeSpec, registry: Registry) -> AgentSpec | None:
    """The node's agent (None for an unknown agent, or a component's instance: never registered)."""
    return registry.get(node.agent) if node.agent in registry else None


def _all_nodes(workflow: Workflow) -> list[NodeSpec]:
    return [*workflow.nodes, *(n for c in workflow.components for n in c.nodes)]
