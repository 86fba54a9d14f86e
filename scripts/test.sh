#!/usr/bin/env bash
# The test command: set-up, lint and type checks, the real services, then every test
# (unit, golden, integration and chaos against a real Kafka and PostgreSQL).
# Extra arguments go to pytest, e.g. `scripts/test.sh tests/unit -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"

echo "==> ruff"
ruff check .
ruff format --check .
echo "==> mypy"
mypy events kafka_auth projections control_plane worker_agent
echo "==> pip-audit (known vulnerabilities of the pinned dependencies; reports, not fails, when unreachable)"
python scripts/audit.py

cleanup() {
  if [ -n "${started_infra:-}" ] && [ -z "${STREAMPLANE_KEEP_INFRA:-}" ]; then
    python -m control_plane.tools.infra down || true
  fi
}
trap cleanup EXIT
if [ -z "${STREAMPLANE_KAFKA_BOOTSTRAP:-}" ]; then
  echo "==> starting Kafka (KRaft, from the Apache jars) and PostgreSQL"
  # set first: an `up` that fails half-way (Kafka started, PostgreSQL not) is stopped too
  started_infra=1
  python -m control_plane.tools.infra up --brokers 1
  # the local PostgreSQL takes passwords (SCRAM): they are in the pgpass file, not the URL
  eval "$(python -m control_plane.tools.infra status | grep -E '^(KAFKA_BOOTSTRAP|DATABASE_URL|PGPASSFILE)=')"
  export STREAMPLANE_KAFKA_BOOTSTRAP="$KAFKA_BOOTSTRAP" STREAMPLANE_DATABASE_URL="$DATABASE_URL"
  export PGPASSFILE
fi

echo "==> pytest (Kafka at $STREAMPLANE_KAFKA_BOOTSTRAP)"
set +e
python -m pytest -p no:cacheprovider "$@"
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
  echo "error: pytest collected no tests" >&2
fi
exit "$rc"
