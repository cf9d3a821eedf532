#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster (temp dir, loopback port, trust auth, non-root user) for the
# storage tests and prints one line for the caller to eval:
#   export SERVICEGRID_TEST_POSTGRES_URL=postgresql+psycopg://servicegrid@127.0.0.1:PORT/servicegrid_test
# Usage:  eval "$(.ci/postgres.sh)"  ...tests...  .ci/postgres.sh stop
# Everything but that line goes to stderr. Installs the server with apt-get when it is missing.
set -euo pipefail

STATE_FILE="${SERVICEGRID_PG_STATE:-${TMPDIR:-/tmp}/servicegrid-ci-postgres.state}"

log() { echo "postgres.sh: $*" >&2; }

find_bin() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }

stop_cluster() {
    [ -f "$STATE_FILE" ] || { log "no cluster recorded in $STATE_FILE; nothing to stop"; return 0; }
    # shellcheck disable=SC1090
    . "$STATE_FILE"
    if [ -d "${PG_DIR:-}/data" ]; then
        as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >&2 || log "pg_ctl stop failed"
        rm -rf "$PG_DIR"
    fi
    rm -f "$STATE_FILE"
    log "stopped"
}

pick_user() {
    if [ "$(id -u)" != 0 ]; then id -un; return; fi
    if ! id postgres >/dev/null 2>&1; then
        useradd --system --no-create-home --shell /usr/sbin/nologin postgres >&2
    fi
    echo postgres
}

as_pg_user() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u "$PG_USER" -- "$@"
    else
        "$@"
    fi
}

free_port() {
    for py in python3 python; do
        if command -v "$py" >/dev/null 2>&1; then
            "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
            return
        fi
    done
    echo 55432
}

if [ "${1:-start}" = "stop" ]; then
    PG_USER="$(pick_user)"
    stop_cluster
    exit 0
fi

PG_BIN="$(find_bin)"
if [ -z "$PG_BIN" ] || [ ! -x "$PG_BIN/initdb" ]; then
    log "installing postgresql with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y postgresql >&2 || { apt-get update >&2 && apt-get install -y postgresql >&2; }
    PG_BIN="$(find_bin)"
fi
[ -x "$PG_BIN/initdb" ] || { log "initdb not found under /usr/lib/postgresql/*/bin"; exit 1; }

[ -f "$STATE_FILE" ] && stop_cluster  # a cluster left by an earlier run
PG_USER="$(pick_user)"
PG_DIR="$(mktemp -d "${TMPDIR:-/tmp}/servicegrid-pg.XXXXXX")"
chmod 700 "$PG_DIR"
[ "$(id -u)" = 0 ] && chown "$PG_USER" "$PG_DIR"
PG_PORT="$(free_port)"

as_pg_user "$PG_BIN/initdb" -D "$PG_DIR/data" -U servicegrid --auth=trust -E UTF8 --locale=C.UTF-8 >&2 \
    || as_pg_user "$PG_BIN/initdb" -D "$PG_DIR/data" -U servicegrid --auth=trust -E UTF8 >&2
as_pg_user "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DIR -c fsync=off -c full_page_writes=off" start >&2 \
    || { cat "$PG_DIR/server.log" >&2; exit 1; }
printf 'PG_DIR=%q\nPG_BIN=%q\nPG_USER=%q\nPG_PORT=%q\n' "$PG_DIR" "$PG_BIN" "$PG_USER" "$PG_PORT" > "$STATE_FILE"
as_pg_user "$PG_BIN/createdb" -h 127.0.0.1 -p "$PG_PORT" -U servicegrid servicegrid_test >&2
log "PostgreSQL running on 127.0.0.1:$PG_PORT (data in $PG_DIR); stop it with: .ci/postgres.sh stop"
echo "export SERVICEGRID_TEST_POSTGRES_URL=postgresql+psycopg://servicegrid@127.0.0.1:$PG_PORT/servicegrid_test"
