"""Every ``streamplane`` command turns bad input into ONE ``error:`` line naming the field,
exit code 2, and no traceback (docs/cli.md). The commands are read from the Typer app, so a
new one is walked the day it is mounted. No command here gets far enough to connect: the
environment points Kafka and PostgreSQL at closed ports anyway, so that one that did would
end in exit code 3 (and fail the test) instead of touching a real service.

The unreachable services (exit code 3) are in tests/integration/test_cli_unreachable.py.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import BaseModel, Field, ValidationError
from support.cli_walk import BAD, Command, Param, closed_port, command_line, commands, run
from support.cli_walk import one_error_line as one_line

from control_plane.errors import CommandRejectedError, CommandTimeoutError
from control_plane.tools.exits import failure, mask, report
from control_plane.tools.infra.config import InfraError
from kafka_auth import KafkaAccessError
from projections.errors import (
    DatabaseQueryError,
    DatabaseUnavailableError,
    KafkaUnavailableError,
    TopicContractError,
    TopicSetupError,
    UnknownTopicError,
)
from telemetry.metrics import MetricsAddressError

COMMANDS = commands()


@pytest.fixture(autouse=True)
def _nothing_reachable(monkeypatch: pytest.MonkeyPatch) -> None:
    port = closed_port()
    monkeypatch.setenv("STREAMPLANE_KAFKA_BOOTSTRAP", f"127.0.0.1:{port}")
    monkeypatch.setenv("STREAMPLANE_DATABASE_URL", f"postgresql://u:pw@127.0.0.1:{port}/x")
    for name in ("STREAMPLANE_LOG_FORMAT", "STREAMPLANE_LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)


def _cases(kinds: set[str]) -> list[tuple[Command, Param]]:
    return [(c, p) for c in COMMANDS for p in c.params if p.kind in kinds]


def _ids(cases: list[tuple[Command, Param]]) -> list[str]:
    return [f"{c.name} {p.hint}" for c, p in cases]


# --- the walk -----------------------------------------------------------------------------


def test_the_walk_sees_every_command() -> None:
    names = {c.name for c in COMMANDS}
    assert {"orchestrator", "worker", "streams add", "instances capacity", "audit drift"} <= names
    assert {"infra up", "decisions golden", "demo", "api", "read-model", "projector"} <= names
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize("command", COMMANDS, ids=[c.name for c in COMMANDS])
def test_an_unknown_option_is_one_line(command: Command, tmp_path: Path) -> None:
    code, _, err = run([*command_line(command, tmp_path), "--no-such-option"])
    assert code == 2, err
    assert one_line(err).startswith("error: --no-such-option: no such option")


TYPED = _cases({"int", "float", "choice", "existing_path", "time"})


@pytest.mark.parametrize(("command", "param"), TYPED, ids=_ids(TYPED))
def test_a_value_of_the_wrong_type_names_the_option(
    command: Command, param: Param, tmp_path: Path
) -> None:
    code, _, err = run(command_line(command, tmp_path, (param.name, BAD[param.kind])))
    assert code == 2, err
    assert one_line(err).startswith(f"error: {param.hint}: "), err


IDS = _cases({"id"})


@pytest.mark.parametrize(("command", "param"), IDS, ids=_ids(IDS))
def test_an_invalid_id_names_the_field(command: Command, param: Param, tmp_path: Path) -> None:
    code, _, err = run(command_line(command, tmp_path, (param.name, BAD["id"])))
    assert code == 2, err
    line = one_line(err)
    assert line.startswith((f"error: {param.hint}: ", f"error: {param.name}: ")), line
    assert "'bad/id'" in line


def test_every_id_parameter_is_walked() -> None:
    walked = {(c.name, p.name) for c, p in IDS}
    assert {("streams add", "stream_id"), ("instances drain", "server_id")} <= walked
    assert {("worker", "server_id"), ("orchestrator", "node_id")} <= walked


@pytest.mark.parametrize("command", COMMANDS, ids=[c.name for c in COMMANDS])
def test_a_bad_log_setting_in_the_environment_is_one_line(
    command: Command, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STREAMPLANE_LOG_FORMAT", "xml")
    code, _, err = run(command_line(command, tmp_path))
    assert code == 2, err
    assert one_line(err) == "error: log_format: Input should be 'text' or 'json' (got 'xml')"


PROCESSES = [c for c in COMMANDS if c.is_process]
#: a setting of each process that its own settings class rejects
PROCESS_SETTINGS = {
    "orchestrator": ("STREAMPLANE_FAIL_AFTER", "soon", "fail_after"),
    "worker": ("STREAMPLANE_MAX_STREAMS", "-1", "max_streams"),
    "projector": ("STREAMPLANE_PROJECTOR_COMMIT_INTERVAL", "0", "projector_commit_interval"),
    "read-model": ("STREAMPLANE_READ_MODEL_BATCH_MAX", "0", "read_model_batch_max"),
    "api": ("STREAMPLANE_API_PORT", "70000", "api_port"),
    "demo": ("STREAMPLANE_DEMO_REFRESH_S", "0", "demo_refresh_s"),
}


def test_the_processes_are_the_commands_with_a_log_format() -> None:
    assert set(PROCESS_SETTINGS) <= {c.name for c in PROCESSES}


@pytest.mark.parametrize("command", PROCESSES, ids=[c.name for c in PROCESSES])
def test_a_process_rejects_a_bad_log_format_flag(command: Command, tmp_path: Path) -> None:
    code, _, err = run([*command_line(command, tmp_path), "--log-format", "yaml"])
    assert code == 2, err
    assert one_line(err).startswith("error: --log-format: ")


@pytest.mark.parametrize(("name", "setting"), sorted(PROCESS_SETTINGS.items()))
def test_a_process_names_a_bad_setting_from_the_environment(
    name: str, setting: tuple[str, str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    env, value, field = setting
    monkeypatch.setenv(env, value)
    code, _, err = run([name])
    assert code == 2, err
    assert one_line(err).startswith(f"error: {field}: "), err
    assert f"(got '{value}')" in err or f"(got {value})" in err


# --- particular inputs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["streams", "add", "bad/id"], "error: stream_id: 'bad/id' is not a valid id"),
        (["streams", "add", "s1", "--weight", "0"], "error: weight: Input should be greater"),
        (["streams", "add", "s1", "--param", "url"], "error: --param: expected key=value"),
        (["streams", "add", "s1", "--zone", "z" * 65], "error: zone: String should have at most"),
        (["instances", "capacity", "w1", "--", "-3"], "error: max_streams: Input should be"),
        (["audit", "state", "--at", "yesterday"], "error: --at: not an ISO 8601 time"),
        (["audit", "state", "--seq", "1", "--offset", "2"], "error: --at / --seq / --offset:"),
        (["audit", "state", "--seq", "-1"], "error: --seq: "),
        (["streams", "show"], "error: stream_id: missing argument"),
        (["streams", "lst"], "error: No such command 'lst'. Did you mean 'list'?"),
        (["worker", "--handler", "no.such:Handler"], "error: "),
    ],
)
def test_bad_input_gives_one_clear_line(args: list[str], expected: str) -> None:
    code, _, err = run(args)
    assert code == 2, err
    assert one_line(err).startswith(expected), err


def test_a_group_without_its_command_shows_its_help_then_one_line() -> None:
    code, out, err = run(["streams"])
    assert code == 2
    assert one_line(err) == "error: missing command"
    assert "add" in out and "list" in out


# --- the mapping --------------------------------------------------------------------------


class _Model(BaseModel):
    max_streams: int = Field(ge=0)
    database_url: str = Field(pattern="^postgresql://")


def _validation_error() -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        _Model(max_streams=-1, database_url="mysql://admin:hunter2@db/x")
    return caught.value


@pytest.mark.parametrize(
    ("exc", "code", "field"),
    [
        (CommandRejectedError("unknown_instance", "no instance w9"), 1, "rejected"),
        (CommandTimeoutError("no answer to DrainInstance within 1s"), 3, "wait"),
        (KafkaUnavailableError("Unable to bootstrap"), 3, "kafka_bootstrap"),
        (UnknownTopicError("no topic t.events"), 2, "topic_prefix"),
        (TopicSetupError("t.events has 3 partitions"), 1, "kafka_bootstrap"),
        (DatabaseUnavailableError("PostgreSQL at h:5/x unreachable"), 3, "database_url"),
        (DatabaseQueryError("relation missing"), 1, None),
        (InfraError("java not found"), 1, None),
        (MetricsAddressError("metrics_address: cannot listen on 127.0.0.1:1"), 2, None),
        (KafkaAccessError("kafka_sasl_password_file: cannot read /x"), 2, None),
        (TopicContractError("topic t.events has retention.ms=1"), 1, "kafka_bootstrap"),
        (ExceptionGroup("task group", [KafkaUnavailableError("down")]), 3, "kafka_bootstrap"),
        (KeyboardInterrupt(), 130, None),
        (RuntimeError("boom"), 1, None),
    ],
)
def test_what_failed_decides_the_exit_code_and_the_field(
    exc: BaseException, code: int, field: str | None
) -> None:
    result = failure(exc)
    assert (result.code, result.field) == (code, field)
    assert "\n" not in result.line and result.line.startswith("error: ")


def test_a_validation_error_is_every_field_on_one_line_without_secrets() -> None:
    line = failure(_validation_error()).line
    assert line.startswith("error: max_streams: Input should be greater than or equal to 0")
    assert "(got -1)" in line and "; database_url: String should match" in line
    assert "hunter2" not in line and "mysql" not in line  # a URL field's value is not shown


def test_credentials_in_a_message_are_masked() -> None:
    assert (
        mask("at postgresql://app:s3cret@db:5432/x failed")
        == "at postgresql://***@db:5432/x failed"
    )
    assert mask("host=db password=s3cret user=app") == "host=db password=*** user=app"
    line = failure(RuntimeError("dsn=postgres://u:s3cret@h/x refused")).line
    assert "s3cret" not in line and "postgres://***@h/x" in line


def test_the_traceback_goes_to_the_log_at_debug(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    def fail() -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.DEBUG, logger="streamplane.cli"):
        try:
            fail()
        except RuntimeError as exc:
            code = report(exc)
    assert code == 1
    record = next(r for r in caplog.records if r.name == "streamplane.cli")
    assert record.levelno == logging.DEBUG and record.exc_info is not None
    last = capsys.readouterr().err.rstrip().splitlines()[-1]  # (the log may come first)
    assert last.startswith("error: unexpected RuntimeError: boom (the traceback is logged")


def test_debug_logging_shows_the_traceback_the_line_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STREAMPLANE_LOG_LEVEL", "DEBUG")
    code, _, err = run(["streams", "list", "--bootstrap", f"127.0.0.1:{closed_port()}"])
    assert code == 3
    assert "Traceback" in err  # the log, at DEBUG
    assert err.rstrip().splitlines()[-1].startswith("error: kafka_bootstrap: ")
