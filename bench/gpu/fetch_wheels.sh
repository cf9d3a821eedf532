#!/usr/bin/env bash
# Fetch the wheels of bench/gpu/wheels.txt for the GPU machine (Python 3.12, x86-64 Linux) into
# .whl/ at the repository root, to carry there:   bash bench/gpu/fetch_wheels.sh [PYTHON_VERSION]
# The device machine cannot reach a package index; bench/gpu/check.sh installs these from .whl/.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYVER=${1:-3.12}
rm -rf .whl && mkdir -p .whl
grep -v '^\s*#' bench/gpu/wheels.txt | grep -v '^\s*$' > .whl/requirements.txt
python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$PYVER" --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl -r .whl/requirements.txt 2>&1 | grep -v "^WARNING: Location" >&2 || true
rm .whl/requirements.txt
want=$(grep -cv '^\s*#\|^\s*$' bench/gpu/wheels.txt)
got=$(ls .whl/*.whl 2>/dev/null | wc -l)
if [ "$got" -ne "$want" ]; then
  echo "fetch_wheels.sh: got $got of $want wheels in .whl/; see pip's messages above" >&2
  exit 1
fi
du -sh .whl >&2
