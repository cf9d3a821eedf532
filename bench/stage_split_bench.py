"""Each stage of the two-stage image pipeline alone vs both fused per batch (512 images 3x64x64,
batches of 32, CPU): where the engine's stage-wise execution loses against a fused loop.

    python bench/stage_split_bench.py [--repeat 5]

Per stage, every split of 2 CPUs into (batches at once x torch threads) and the 1 x 1 baseline;
then the fused loop (preprocess then classify on each batch). Best and median of N, in ms.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import torch

from engine.agents import vision_ops as ops
from engine.agents.nets import cnn_for

N, BATCH = 512, 32


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    images = torch.rand(N, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    model, config = cnn_for("lesion_cnn", "cpu")

    def pre(b: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return ops.normalise(ops.denoise(ops.resize(b, 64), "gaussian", 1.0), "unit", 0.5, 0.25)

    def cls(b: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model(ops.to_channels(b, config.in_channels)).softmax(1)

    parts = [slice(i, i + BATCH) for i in range(0, N, BATCH)]

    def timed(fn: Callable[[torch.Tensor], torch.Tensor], data: torch.Tensor, workers: int, threads: int) -> float:
        torch.set_num_threads(threads)
        began = time.perf_counter()
        if workers == 1:
            [fn(data[p]) for p in parts]
        else:
            with ThreadPoolExecutor(workers) as pool:
                list(pool.map(lambda p: fn(data[p]), parts))
        return time.perf_counter() - began

    preprocessed = torch.cat([pre(images[p]) for p in parts])
    cases = {f"{name} {w} at once x {t} thread(s)": (fn, data, w, t)
             for name, fn, data in (("preprocess", pre, images), ("classify", cls, preprocessed))
             for w, t in ((2, 1), (1, 2), (1, 1))}
    cases["fused loop, 1 at once x 2 threads"] = (lambda b: cls(pre(b)), images, 1, 2)
    cases["fused loop, 2 at once x 1 thread"] = (lambda b: cls(pre(b)), images, 2, 1)
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.repeat):  # round-robin: load bursts hit every case alike
        for name, (fn, data, w, t) in cases.items():
            times[name].append(timed(fn, data, w, t))
    for name, values in times.items():
        print(f"{name:<40} best {min(values) * 1e3:7.1f} ms   median {statistics.median(values) * 1e3:7.1f} ms")
    best = {stage: min(min(v) for k, v in times.items() if k.startswith(stage)) for stage in ("preprocess", "classify")}
    fused = min(min(v) for k, v in times.items() if k.startswith("fused"))
    print(f"best per stage summed: {sum(best.values()) * 1e3:.1f} ms; best fused: {fused * 1e3:.1f} ms "
          f"(stage-wise / fused = {sum(best.values()) / fused:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
