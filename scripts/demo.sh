#!/usr/bin/env bash
# The main job: set-up, the local Kafka, then `streamplane demo` (two orchestrators,
# demo workers and streams, with a live status). Arguments go to `streamplane demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/.venv/bin:$PATH"
if [ -z "${STREAMPLANE_KAFKA_BOOTSTRAP:-}" ]; then
  python -m control_plane.tools.infra up --brokers 1 --no-postgres
  eval "$(python -m control_plane.tools.infra status | grep -E '^KAFKA_BOOTSTRAP=')"
  export STREAMPLANE_KAFKA_BOOTSTRAP="$KAFKA_BOOTSTRAP"
fi
exec streamplane demo "$@"
