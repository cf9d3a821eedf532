#!/usr/bin/env bash
# One entry point for people and CI.
#   ./dev.sh start   install into .venv (if needed) and start the app on SQLite at http://127.0.0.1:8501
#   ./dev.sh test    install with the test extras (and Chromium for browser tests), then run lint,
#                    import contracts and the whole test suite
#   ./dev.sh install just install
# Torch: on a machine with an NVIDIA driver the normal CUDA build from PyPI is installed; without one
# the CPU build (`torch==2.13.0`, which this project's machines keep on local disk). Override with
# TORCH_SPEC, e.g. TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cpu".
set -euo pipefail
cd "$(dirname "$0")"
VENV=${VENV:-.venv}
PY=${PYTHON:-python3}
cmd=${1:-start}
shift || true

# A fresh install (torch, Ray, Chromium's Python driver...) needs about 3 GB; pip's own error for a
# full disk ("[Errno 28] No space left on device") comes after minutes and says nothing about where.
check_space() {
  local need_mb=$1 dir free_mb
  dir=$(dirname "$(realpath -m "$VENV")")
  for d in "$dir" "${TMPDIR:-/tmp}"; do
    free_mb=$(df -Pm "$d" 2>/dev/null | awk 'NR==2 {print $4}')
    if [ -n "$free_mb" ] && [ "$free_mb" -lt "$need_mb" ]; then
      echo "dev.sh: only ${free_mb} MB free on the disk holding $d; installing into $VENV needs about" \
           "${need_mb} MB. Free some space (old virtual environments, clones in ${TMPDIR:-/tmp}) or" \
           "point VENV / TMPDIR at a disk with room, then run this again." >&2
      exit 1
    fi
  done
}

install() {
  local extras=$1
  if [ ! -x "$VENV/bin/python" ]; then
    check_space 4000
    "$PY" -m venv "$VENV"
  fi
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  if ! "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    if [ -n "${TORCH_SPEC:-}" ]; then
      # shellcheck disable=SC2086
      "$VENV/bin/pip" install -q $TORCH_SPEC
    elif command -v nvidia-smi >/dev/null 2>&1; then
      "$VENV/bin/pip" install -q torch
    else
      "$VENV/bin/pip" install -q "torch==2.13.0"
    fi
  fi
  "$VENV/bin/pip" install -q -e ".[${extras}]"
}

case "$cmd" in
  install)
    install "solver,onnx"
    ;;
  start)
    install "solver,onnx"
    exec "$VENV/bin/servicegrid" ui "$@"
    ;;
  test)
    install "test,ray,solver,onnx,postgres"
    if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ]; then
      (apt-get update -qq && apt-get install -y -qq chromium) >/dev/null 2>&1 \
        || echo "dev.sh: could not install chromium; browser tests will be skipped" >&2
    fi
    started_pg=0
    if [ -x .ci/postgres.sh ] && [ -z "${SERVICEGRID_TEST_POSTGRES_URL:-}" ]; then
      # a throwaway PostgreSQL on loopback for the storage tests; stopped when the tests end
      if pg_export=$(.ci/postgres.sh); then
        eval "$pg_export"; started_pg=1
      else
        echo "dev.sh: PostgreSQL unavailable; its tests will be skipped" >&2
      fi
    fi
    . "$VENV/bin/activate"
    echo "== ruff"; ruff check .
    echo "== import contracts"; lint-imports
    echo "== tests"
    status=0
    pytest "$@" || status=$?
    ray stop --force >/dev/null 2>&1 || true
    [ "$started_pg" = 1 ] && .ci/postgres.sh stop || true
    exit $status
    ;;
  *)
    echo "usage: ./dev.sh start|test|install [args]" >&2
    exit 2
    ;;
esac
