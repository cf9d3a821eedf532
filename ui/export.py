"""Export a workflow as a Python script using the original API (``servicegrid.graph.Graph``).

The original API knows services with a compute demand and an execution time, so only workflows
made of ``sim.task`` nodes can be expressed: ``compute_resource`` is memory in GB (the article's
unit) and ``execution_time`` is minutes (``duration_s / 60``).
"""

from __future__ import annotations

from engine.workflow import Workflow

_EXPRESSIBLE_RESOURCES = {"memory_mb", "cpu"}


class NotExpressibleError(ValueError):
    """The workflow uses something the original API cannot say; the message says what."""


def _number(value: float) -> str:
    return repr(int(value)) if float(value).is_integer() else repr(round(float(value), 6))


def python_script(workflow: Workflow) -> str:
    """The script text. Raises NotExpressibleError naming the first node the API cannot express."""
    if not workflow.nodes:
        raise NotExpressibleError("the workflow has no nodes")
    for node in workflow.nodes:
        if node.agent != "sim.task":
            raise NotExpressibleError(
                f"node {node.id!r} uses agent {node.agent!r}; the original Graph API only knows simulated "
                "services (sim.task). Export the JSON workflow file instead.")
        extra = set(node.resources) - _EXPRESSIBLE_RESOURCES
        if extra or node.resources.get("cpu", 1) != 1 or node.lifecycle:
            raise NotExpressibleError(
                f"node {node.id!r} sets {', '.join(sorted(extra)) or 'cpu or lifecycle rules'}, which the "
                "original API (one compute demand and one execution time) cannot express")
    lines = [
        f'"""Workflow {workflow.name!r}, exported by ServiceGrid Studio (original Graph API).',
        "",
        "compute_resource is memory in GB, execution_time is minutes (the article's units).",
        '"""',
        "",
        "from servicegrid.graph import Graph",
        "from servicegrid.service import Service",
        "",
        "graph = Graph()",
    ]
    for node in workflow.nodes:
        memory_gb = float(node.resources.get("memory_mb", 0)) / 1024
        minutes = float(node.params.get("duration_s", 1.0)) / 60
        lines.append(f"graph.add_node({node.id!r}, Service(compute_resource={_number(memory_gb)}, "
                     f"execution_time={_number(minutes)}))")
    for edge in workflow.edges:
        lines.append(f"graph.add_edge({edge.source!r}, {edge.target!r})")
    lines += [
        "",
        'if __name__ == "__main__":',
        "    graph.execute()",
        '    print(f"Resource demand: {graph.get_total_resource()}, Execution time: {graph.get_total_time()}")',
        "",
    ]
    return "\n".join(lines)
