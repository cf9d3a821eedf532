#!/usr/bin/env bash
# The GPU check of issue 4, one short prepared command for a lent GPU machine (no network there):
#   here:   bash bench/gpu/fetch_wheels.sh          # the few packages its image lacks, into .whl/
#   there:  bash bench/gpu/check.sh "$OUT"          # device tool: run(command=..., carry=[".whl"])
# Steps, each with its own time limit, each logged and summarised (a failed step does not stop the
# others): the machine and torch; the test suite's engine and agent tests (the `gpu` ones run, the
# rest must still pass with CUDA present); the agents benchmark on cuda:0 (declared vs measured
# per agent, per template, the two-stage pipeline with throughput and peak GPU memory per agent);
# each GPU-capable agent's GPU memory by batch size, items and image side (bench/gpu/memory.py);
# two templates through the CLI into a throwaway SQLite database, and the stored runs read back
# (device and peak GPU memory per node). 8 files land in OUT (the most the tool returns).
# DEVICE=cpu runs the same steps on a machine without CUDA (a dry run of this script).
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:-${OUT:-artifacts/gpu-check}}
DEVICE=${DEVICE:-cuda:0}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PYTHONUNBUFFERED=1 SERVICEGRID_DATA_DIR="$work/data" SERVICEGRID_DATABASE_URL="sqlite:///$work/gpu.db"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$work/site" .whl/*.whl \
    || { echo "check.sh: could not install the carried wheels (.whl/)" | tee "$OUT/summary.txt"; exit 1; }
  export PYTHONPATH="$work/site:$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
fi

failed=0
step() {  # step NAME SECONDS COMMAND...: run it with a limit, log to OUT/NAME.log, one summary line
  local name=$1 limit=$2 start rc
  shift 2
  echo "== $name (limit ${limit}s)"
  start=$(date +%s)
  timeout "$limit" "$@" > "$OUT/$name.log" 2>&1
  rc=$?
  tail -n 25 "$OUT/$name.log"
  [ "$rc" = 0 ] || failed=$((failed + 1))
  printf '%-10s rc=%-3s %4ss\n' "$name" "$rc" "$(( $(date +%s) - start ))" | tee -a "$OUT/summary.txt"
}

: > "$OUT/summary.txt"
step machine 60 bash -c "nvidia-smi -L 2>&1 || echo 'no nvidia-smi'; nproc; free -g | head -2; \"$PY\" -c '
import sys, torch, engine.devices as d
print(sys.version.split()[0], \"torch\", torch.__version__, \"cuda\", torch.version.cuda, torch.cuda.is_available())
print(d.machine_capacity().describe())'"
step tests 240 "$PY" -m pytest -q -p no:cacheprovider -o addopts="-ra --strict-markers" \
  tests/agents tests/engine tests/executor tests/planner tests/test_original_api.py
step bench 300 "$PY" bench/agents_bench.py --device "$DEVICE" --repeat 3 --no-ray --json "$OUT/bench.json"
step memory 120 "$PY" bench/gpu/memory.py --device "$DEVICE" --json "$OUT/memory.json"
step cli 120 bash -c "
set -e
for t in image-pipeline nlp-sentiment; do \"$PY\" -m servicegrid.cli run examples/\$t.json --no-cache; done
\"$PY\" -m servicegrid.cli runs
for id in \$(\"$PY\" -m servicegrid.cli runs --json | \"$PY\" -c 'import json,sys; print(*[r[\"id\"] for r in json.load(sys.stdin)])'); do
  \"$PY\" -m servicegrid.cli runs show \"\$id\"
done"
echo "== summary ($failed failed)"; cat "$OUT/summary.txt"
exit "$failed"
