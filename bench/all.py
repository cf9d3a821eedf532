"""Every benchmark in one command; each prints its own tables with the peers measured in the same run.

    .venv/bin/python bench/all.py            # full sizes (tens of minutes on 2 cores)
    .venv/bin/python bench/all.py --quick    # small sizes, a few minutes: a smoke test of every table

Targets are ratios against a baseline in the same run (these machines are shared and noisy); none
of them is asserted. docs/*.md record what was measured and when.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# script, arguments for --quick, arguments for a full run
BENCHES: list[tuple[str, list[str], list[str]]] = [
    ("validate_bench.py", [], []),
    ("executor_bench.py", ["--quick"], []),
    ("planner_bench.py", ["--quick"], []),
    ("storage_bench.py", [], []),
    ("agents_bench.py", ["--repeat", "1"], []),
    ("stage_split_bench.py", ["--repeat", "2"], []),
    ("monitor_bench.py", ["--repeat", "3"], []),
    ("monitor_browser_bench.py", [], []),
    ("ray_bench.py", ["--nodes", "200", "--repeats", "1"], []),
    ("designer_bench.py", [], []),
    ("soak_bench.py", [], []),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes")
    parser.add_argument("--only", nargs="*", help="names of the benches to run (e.g. executor planner)")
    args = parser.parse_args()
    failed = []
    for script, quick, full in BENCHES:
        name = script.removesuffix("_bench.py")
        if args.only and name not in args.only:
            continue
        print(f"\n===== {name} =====", flush=True)
        started = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / script), *(quick if args.quick else full)])
        print(f"----- {name}: exit {rc}, {time.perf_counter() - started:.1f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print(f"\nbenchmarks that failed to run: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
