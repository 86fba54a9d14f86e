"""The log settings every command reads first (telemetry.logs.setup_logging): the
environment, the flags over it, JSON lines, and the quiet one-shot commands."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from telemetry.logs import LogSettings, configure, setup_logging


@pytest.fixture(autouse=True)
def _restore(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ("STREAMPLANE_LOG_FORMAT", "STREAMPLANE_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    yield
    configure("WARNING", "text")


def _lines(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def test_json_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMPLANE_LOG_FORMAT", "json")
    settings = setup_logging()
    logging.getLogger("streamplane.test").info("applied", extra={"seq": 4, "epoch": 2})
    assert settings == LogSettings(log_format="json", log_level=None)
    (line,) = _lines(capsys)
    record = json.loads(line)
    assert (record["message"], record["seq"], record["epoch"]) == ("applied", 4, 2)


def test_the_flags_win_over_the_environment(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STREAMPLANE_LOG_FORMAT", "json")
    monkeypatch.setenv("STREAMPLANE_LOG_LEVEL", "error")
    setup_logging(level="info", fmt="text")
    logging.getLogger("streamplane.test").info("plain")
    (line,) = _lines(capsys)
    assert line.endswith("INFO streamplane.test: plain")


def test_the_command_s_default_level_applies_when_none_is_set(
    capsys: pytest.CaptureFixture[str],
) -> None:
    setup_logging(default_level="WARNING")
    logging.getLogger("streamplane.test").info("not shown")
    logging.getLogger("streamplane.test").warning("shown")
    assert [line.rsplit(": ", 1)[1] for line in _lines(capsys)] == ["shown"]


def test_a_bad_value_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMPLANE_LOG_LEVEL", "loud")
    with pytest.raises(ValidationError) as caught:
        setup_logging()
    assert [e["loc"] for e in caught.value.errors()] == [("log_level",)]


def test_quiet_loggers_keep_only_critical_unless_debugging(
    capsys: pytest.CaptureFixture[str],
) -> None:
    kafka = logging.getLogger("aiokafka.conn")
    setup_logging(default_level="WARNING", quiet=("aiokafka",))
    kafka.error("Unable connect")
    kafka.critical("on fire")
    logging.getLogger("aiokafkax").error("another library")  # not a child of aiokafka
    assert [line.rsplit(": ", 1)[1] for line in _lines(capsys)] == ["on fire", "another library"]
    setup_logging(level="DEBUG", quiet=("aiokafka",))
    kafka.error("Unable connect")
    assert [line.rsplit(": ", 1)[1] for line in _lines(capsys)] == ["Unable connect"]
