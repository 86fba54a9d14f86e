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

# The dashboard's browser test drives Debian's Chromium (Playwright cannot fetch a browser of
# its own here). Installed when missing and running as root; a failure is only a warning (the
# demo needs no browser), and the browser test then fails saying how to get one.
if ! command -v chromium >/dev/null && [ -z "${STREAMPLANE_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> installing Debian's chromium (for the dashboard's browser test)"
    log=.venv/chromium-install.log
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; } \
        >"$log" 2>&1; then
      tail -n 20 "$log" >&2
      echo "warning: installing chromium failed (log: $log); the browser test will fail" >&2
    fi
  else
    echo "note: no chromium: the dashboard's browser test needs it (apt-get install chromium)" >&2
  fi
fi

# promtool (from Debian's prometheus package) checks docs/prometheus/alerts.yml and runs its
# cases (tests/unit/test_monitor_prometheus_rules.py; without it that test checks the structure
# only). When missing and running as root, the package is downloaded and only its promtool is
# unpacked into .venv/bin: installing the package would also start a Prometheus server.
if ! command -v promtool >/dev/null && [ ! -x .venv/bin/promtool ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "==> fetching promtool (Debian's prometheus package, unpacked into .venv)"
    log=.venv/promtool-install.log
    tmp=$(mktemp -d)
    if { apt-get update && (cd "$tmp" && apt-get download prometheus) &&
         dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/root" &&
         install -m 0755 "$tmp/root/usr/bin/promtool" .venv/bin/promtool; } >"$log" 2>&1; then
      :
    else
      tail -n 20 "$log" >&2
      echo "warning: fetching promtool failed (log: $log); the rules get a structure check only" >&2
    fi
    rm -rf "$tmp"
  else
    echo "note: no promtool: the alerting rules get a structure check only (apt-get install prometheus)" >&2
  fi
fi
