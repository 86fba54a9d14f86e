"""Every ``streamplane`` command that talks to Kafka (and PostgreSQL) ends with exit code 3
and ONE ``error:`` line naming the address setting when nothing answers there, fast, with
no traceback and no password. The commands are read from the Typer app (tests/support/
cli_walk.py), so a new one is covered the day it is mounted.

The long-running processes (those with ``--log-format``) are left out on purpose: they wait
for Kafka with back-off (tests/integration/test_unreachable_services.py holds the
orchestrator to that). Nothing here needs a running service: the addresses are closed
loopback ports.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from support.cli_walk import Command, closed_port, command_line, commands, one_error_line, run

SECRET = "s3cret-pw"
ONE_SHOT = [c for c in commands() if c.has("bootstrap") and not c.is_process]


@pytest.fixture(autouse=True)
def _short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    # one PostgreSQL attempt, so the test is about the message, not the retry schedule
    monkeypatch.setenv("STREAMPLANE_DATABASE", json.dumps({"attempts": 1, "connect_timeout": 2}))
    for name in ("STREAMPLANE_LOG_FORMAT", "STREAMPLANE_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)


def test_the_one_shot_commands_are_walked() -> None:
    names = {c.name for c in ONE_SHOT}
    assert {"streams add", "streams list", "instances capacity", "health", "topics"} <= names
    assert {"audit state", "audit verify", "audit drift", "rebalance", "recover"} <= names


@pytest.mark.timeout(60)
@pytest.mark.parametrize("command", ONE_SHOT, ids=[c.name for c in ONE_SHOT])
def test_an_unreachable_service_is_exit_3_and_one_line(command: Command, tmp_path: Path) -> None:
    port = closed_port()
    args = [*command_line(command, tmp_path), "--bootstrap", f"127.0.0.1:{port}"]
    if command.has("database_url"):
        args += ["--database-url", f"postgresql://app:{SECRET}@127.0.0.1:{port}/streamplane"]
    if command.has("wait"):
        args += ["--wait", "2"]
    started = time.monotonic()
    code, _, err = run(args)
    assert code == 3, err
    line = one_error_line(err)
    field = "database_url" if command.has("database_url") else "kafka_bootstrap"
    assert line.startswith(f"error: {field}: "), line
    assert str(port) in line and SECRET not in err  # the address at fault, no password
    assert time.monotonic() - started < 30
