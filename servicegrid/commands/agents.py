"""``servicegrid agents``: list the registered agents (name, category, ports, resources, time)."""

from __future__ import annotations

import argparse
import json
import sys

from engine.errors import suggest
from engine.registry import default_registry
from engine.spec import AgentSpec, PortSpec


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("agents", help="list the registered agents",
                       description="List the registered agents (built-in and plugins).")
    p.add_argument("--json", action="store_true", help="print full descriptions as JSON")
    p.add_argument("--category", metavar="C", help="only agents of this category")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    registry = default_registry()
    specs = list(registry)
    if args.category:
        categories = sorted(registry.categories())
        if args.category not in categories:
            close = suggest(args.category, categories)
            tip = f" Did you mean {close[0]!r}?" if close else ""
            print(f"servicegrid agents: no category {args.category!r}.{tip} "
                  f"Known: {', '.join(categories)}", file=sys.stderr)
            return 2
        specs = [s for s in specs if s.category == args.category]
    if args.json:
        print(json.dumps([s.to_dict() for s in specs], indent=2, ensure_ascii=False, default=str))
    else:
        print(format_table(specs))
    return 0


def format_table(specs: list[AgentSpec]) -> str:
    """A plain-text table: one row per agent."""
    header = ("NAME", "CATEGORY", "INPUTS", "OUTPUTS", "RESOURCES", "EXPECTED")
    rows = [header] + [
        (s.name, s.category, _ports(s.inputs), _ports(s.outputs), _resources(s),
         s.duration_text())
        for s in specs
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines) + f"\n{len(specs)} agent(s)"


def _ports(ports: tuple[PortSpec, ...]) -> str:
    marks = {True: "*", False: ""}
    return ", ".join(f"{p.name}:{p.kind.value}{marks[p.multiple]}" for p in ports) or "-"


def _resources(spec: AgentSpec) -> str:
    r = spec.resources
    parts = [f"cpu={r.cpu:g}"]
    if r.memory_mb:
        grows = spec.memory_growth_text()
        parts.append(f"mem={r.memory_mb:,.0f}MB" + (f"+{grows}" if grows else ""))
    if (gpu := spec.gpu_memory_parts()) is not None:  # on a GPU: once, plus per item of a batch
        parts.append(f"gpu={gpu[0]:,.0f}MB" + (f"+{gpu[1]:.2g}MB/item" if gpu[1] else ""))
    elif r.gpu_memory_mb:
        parts.append(f"gpu={r.gpu_memory_mb:,.0f}MB")
    if r.device != "cpu":
        parts.append(f"device={r.device}")
    parts += [f"{k}={v:g}" for k, v in sorted(r.custom.items())]
    return " ".join(parts)
