"""GPU memory of the agents that may run on a GPU (``device: any``), measured on the templates'
own data: what the agent's weights take once loaded, and its peak while it runs, by batch
size, number of items and image side. These figures are what the agents' declared GPU memory
(``gpu_memory_fn``) is fitted to; run it on a GPU machine (``bench/gpu/check.sh`` does):

    python bench/gpu/memory.py --device cuda:0 --json memory.json

Each measurement builds and loads a fresh agent after ``torch.cuda.empty_cache()``, so the
figures are torch's allocations (``memory_allocated`` / ``max_memory_allocated``) above what
was allocated before: tensors only, not the CUDA context (~500 MB a process, paid once) nor the
caching allocator's slack. Sources run on the CPU, as they do in a run. ``--device cpu`` runs
the same loop with zeros for memory (a dry run of the script).
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from agents_bench import _custom_model_file, _node_inputs, template_nodes  # noqa: E402

from engine.payloads import cut_inputs, item_count  # noqa: E402
from engine.registry import default_registry  # noqa: E402
from engine.spec import RunContext  # noqa: E402

EXAMPLES = ROOT / "examples"
SIDES = (32, 64, 128)  # the image templates again with scans of these sides
BATCHES = (None, 8, 32, 128)  # None: the agent's own default (the whole input where it has none)
GROW = {"text.source": "n", "tabular.source": "n_items", "recommend.behaviour": "n_users"}  # x10 copies
CUTTABLE = {"image_batch", "text_batch"}  # inputs cut to fewer items (tables are measured at two sizes)
MB = 2**20


def _mb(device: str, what: str) -> float:
    if not device.startswith("cuda"):
        return 0.0
    torch.cuda.synchronize(torch.device(device))
    return (torch.cuda.max_memory_allocated(torch.device(device)) if what == "peak"
            else torch.cuda.memory_allocated(torch.device(device))) / MB


def measure(spec: Any, params: Any, inputs: dict[str, Any], device: str, batch: int | None,
            items: int) -> dict[str, float]:
    """One fresh agent: weights once loaded, peak and left-over while running ``items`` items."""
    gc.collect()
    if device.startswith("cuda"):
        torch.zeros(1, device=device)  # the allocator exists only after a first allocation
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(torch.device(device))
    base = _mb(device, "now")
    agent = spec.build(params)
    agent.load(device)
    weights = _mb(device, "now") - base
    lifecycle = spec.lifecycle.merged({"execution": {"batch_size": batch}} if batch else None)
    if items and spec.inputs and all(p.kind.value in CUTTABLE for p in spec.inputs):
        inputs = cut_inputs(spec, inputs, slice(0, items))
    out = agent.run(inputs, RunContext(device=device, threads=1, lifecycle=lifecycle))
    peak, after = _mb(device, "peak") - base, _mb(device, "now") - base
    del agent, out
    return {"weights_mb": round(weights, 3), "peak_mb": round(peak, 3), "after_mb": round(after, 3),
            "batch_size": lifecycle.execution.batch_size}


def template_workflows() -> list[tuple[str, dict[str, Any]]]:
    """(label, workflow data) of every template, the image ones again at each of ``SIDES``."""
    out = []
    for path in sorted(EXAMPLES.glob("*.json")):
        data = json.loads(path.read_text())
        out.append((path.stem, data))
        if any(n["agent"] == "vision.source" for n in data["nodes"]):
            for side in SIDES:
                scaled = copy.deepcopy(data)
                for n in scaled["nodes"]:
                    if n["agent"] == "vision.source":
                        n["params"]["size"] = side
                    if n["agent"] == "vision.preprocess":
                        n["params"]["size"] = side
                out.append((f"{path.stem}@{side}px", scaled))
        if any(n["agent"] in GROW for n in data["nodes"]):
            grown = copy.deepcopy(data)
            for n in grown["nodes"]:
                if n["agent"] in GROW:
                    field = GROW[n["agent"]]
                    default = registry_default(n["agent"], field)
                    n.setdefault("params", {})[field] = 10 * int(n.get("params", {}).get(field, default))
            out.append((f"{path.stem}@x10", grown))
    return out


def registry_default(agent: str, field: str) -> Any:
    spec = default_registry().get(agent)
    return getattr(spec.parse_params({}), field)


def run(device: str) -> list[dict[str, Any]]:
    registry = default_registry()
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for label, data in template_workflows():
        found = template_nodes(data, registry)
        if found is None:
            continue
        wf, nodes = found
        outputs: dict[str, dict[str, Any]] = {}
        for node, spec in nodes:
            node_id = node.id
            params = spec.parse_params(node.params)
            inputs = _node_inputs(wf, registry, node_id, outputs)
            agent = spec.build(params)
            agent.load("cpu")
            outputs[node_id] = agent.run(inputs, RunContext(node_id=node_id, threads=1,
                                                            lifecycle=spec.lifecycle.merged(node.lifecycle)))
            del agent
            variant = label.rpartition("@")[2] if "@" in label else ""
            key = (node.agent, node.params_key(), variant)
            if spec.resources.device == "cpu" or key in seen:
                continue
            seen.add(key)
            try:
                n = item_count(spec, inputs)
            except Exception:  # a table: its rows
                table = next(iter(inputs.values()), None)
                columns = table.get("columns") if isinstance(table, dict) else None
                n = len(next(iter(columns.values()))) if columns else 0
            cuttable = all(p.kind.value in CUTTABLE for p in spec.inputs)
            done: set[tuple[int | None, int]] = set()
            for batch in BATCHES:
                for items in sorted({max(1, n // 4), n}) if cuttable and n else (n,):
                    row = {"template": label, "node": node_id, "agent": node.agent, "items": items,
                           "params": node.params, **measure(spec, params, inputs, device, batch, items)}
                    if (row["batch_size"], items) in done:
                        continue
                    done.add((row["batch_size"], items))
                    rows.append(row)
                    print(f"{label:28} {node_id:16} {node.agent:22} batch {row['batch_size']!s:>5} "
                          f"items {items:6d}  weights {row['weights_mb']:8.2f}  peak {row['peak_mb']:8.2f}"
                          f"  after {row['after_mb']:7.2f} MB", flush=True)
    spec = registry.get("custom.model")
    with tempfile.TemporaryDirectory() as tmp:
        params = spec.parse_params({"path": str(_custom_model_file(Path(tmp))), "input_kind": "image_batch",
                                    "classes": ["a", "b"]})
        images = torch.rand(256, 1, 64, 64, generator=torch.Generator().manual_seed(0))
        payload = {"images": images, "ids": [f"i{i}" for i in range(256)], "labels": None, "classes": []}
        for batch in BATCHES:
            row = {"template": "custom", "node": "linear", "agent": "custom.model", "items": 256,
                   "params": {"input_kind": "image_batch"}, **measure(spec, params, {"in": payload}, device, batch, 256)}
            rows.append(row)
            print(f"{'custom (TorchScript linear)':28} {'linear':16} custom.model           batch "
                  f"{row['batch_size']!s:>5} items    256  weights {row['weights_mb']:8.2f}  peak "
                  f"{row['peak_mb']:8.2f}  after {row['after_mb']:7.2f} MB", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda:0" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ.setdefault("SERVICEGRID_DATA_DIR", tmp)  # sinks write here
        rows = run(args.device)
    if args.json:
        args.json.write_text(json.dumps({"device": args.device, "torch": torch.__version__, "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
