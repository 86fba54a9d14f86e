#!/usr/bin/env bash
# Creates .venv/ at the repo root with streamplane installed editable (plus dev tools).
# Idempotent: re-installs only when pyproject.toml changed since the last install.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if ! command -v "$PYTHON" >/dev/null; then
  echo "error: $PYTHON not found (Python 3.11+ is needed)" >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.streamplane-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing streamplane and its pinned dependencies into .venv"
  log=.venv/install.log
  # pip's and setuptools' chatter goes to a log, shown only when the install fails
  if ! { .venv/bin/python -m pip install --upgrade pip &&
         .venv/bin/python -m pip install -e '.[dev]'; } >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    echo "error: installing the Python dependencies failed (full log: $log)" >&2
    exit 1
  fi
  echo "$want" > "$stamp"
fi
