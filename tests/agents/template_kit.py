"""Shared by the template tests: where templates live, how one runs, what every template file must be.

A plain module (not conftest) so the test files can import it by a name no other test folder uses."""

from __future__ import annotations

from pathlib import Path

from engine.agents.tables import to_table
from engine.components import flatten
from engine.events import RunStatus
from engine.items import planned_items
from engine.runs import RunHandle, RunManager, RunOptions
from engine.validation import validate
from engine.workflow import Workflow, load_workflow

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def run_template(manager: RunManager, name: str, time_scale: float = 1.0) -> RunHandle:
    """Run ``examples/<name>.json`` without the cache; fails the test unless it succeeds, or
    unless an output's columns differ from those planned for it."""
    workflow = load_workflow(EXAMPLES / f"{name}.json")
    handle = manager.submit(workflow, RunOptions(use_cache=False, time_scale=time_scale))
    status = handle.wait(120)
    failed = {k: v.get("error") for k, v in handle.snapshot().nodes.items() if v.get("error")}
    assert status == RunStatus.SUCCEEDED, failed
    check_planned_columns(handle, flatten(workflow), manager)  # the nodes inside components too
    return handle


def check_planned_columns(handle: RunHandle, workflow: Workflow, manager: RunManager) -> None:
    """Every output whose columns the planner knows reads as a table with exactly those columns
    (``AgentSpec.columns_fn`` against ``to_table``): the templates' data carry their ground truth,
    so even the columns only some runs have are there. A column whose names are known (a class,
    a priority: ``PlannedItems.values_on``) holds no others. Validation's column, class and
    condition checks and the designer's pickers stand on these."""
    planned = planned_items(workflow, manager.registry)
    checked = 0
    for node in workflow.nodes:
        for port, payload in (handle.outputs(node.id) or {}).items():
            columns = planned.columns_on(node.id, port)
            if columns is None or payload is None:
                continue
            table, _ = to_table(payload)
            assert tuple(table) == columns, f"{node.id}.{port} ({node.agent})"
            check_planned_rows(node.id, port, node.agent, len(next(iter(table.values()), ())),
                               planned.on_port(node.id, port))
            for column, names in planned.values_on(node.id, port).items():  # the names a column can hold
                held = {str(v) for v in table[column] if v not in (None, "")}
                assert held <= set(names), f"{node.id}.{port}.{column} holds {held - set(names)}"
            checked += 1
    known = sum(planned.columns_on(n.id, p.name) is not None
                for n in workflow.nodes if n.agent in manager.registry for p in manager.registry.get(n.agent).outputs)
    assert checked == known, f"{known - checked} planned outputs were not kept to check"


# outputs that hold some of the rows their node receives (how many, the data decides)
SUBSETS = {("flow.branch", "match"), ("flow.branch", "rest"), ("decision.threshold", "flagged"),
           ("decision.threshold", "passed")}
ROWS_FACTOR = 2.0  # a plan may approximate (a log's mean length, the entities in a text)


def check_planned_rows(node: str, port: str, agent: str, rows: int, planned: int | None) -> None:
    """The rows an output holds are those planned for it (``engine.items``), within a factor of
    two, or for a subset at most those: what the canvas's wires say, and what the node's time and
    memory were planned for (one risk per customer, not per transaction)."""
    assert planned is not None, f"{node}.{port} ({agent}): no item count planned"
    assert rows <= planned * ROWS_FACTOR, f"{node}.{port} ({agent}): {rows} rows, {planned} planned"
    if (agent, port) not in SUBSETS:
        assert rows >= planned / ROWS_FACTOR, f"{node}.{port} ({agent}): {rows} rows, {planned} planned"


def check_template_file(name: str) -> None:
    """A template has a description, positions laid out left to right, and no findings."""
    workflow = load_workflow(EXAMPLES / f"{name}.json")
    assert workflow.description and all(n.position is not None for n in workflow.nodes)
    xs = {n.id: n.position.x for n in workflow.nodes if n.position}
    assert all(xs[e.source] < xs[e.target] for e in workflow.edges)  # laid out left to right
    assert validate(workflow) == []
