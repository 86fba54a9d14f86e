"""The CLI against a real Kafka and real processes: its exit codes for a command nobody
answers (3), one the orchestrator rejects (1) and one it carries out (0); and the processes
started with JSON logs (``STREAMPLANE_LOG_FORMAT=json``, or ``--log-format json``) write
nothing but JSON lines (the Faust projector too).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from support.cli_walk import one_error_line, run

from control_plane.tools.harness import CLI, Children, child_env, orchestrator_args, worker_args
from events.topics import Topics
from projections.io.topics import ensure_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: keys every JSON log line carries (telemetry.logs)
LINE_KEYS = {"time", "level", "logger", "message"}


def _json_lines(text: str, who: str) -> list[dict[str, object]]:
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines, f"{who} wrote nothing"
    parsed = []
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            pytest.fail(f"{who} wrote a line that is not JSON: {line!r}")
        assert isinstance(record, dict) and LINE_KEYS <= record.keys(), line
        parsed.append(record)
    return parsed


def test_exit_codes_and_json_logs_of_real_processes(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    asyncio.run(ensure_topics(kafka_bootstrap, Topics(topic_prefix)))
    where = ["--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix]

    code, _, err = run(["streams", "add", "early", "--wait", "2", *where])
    assert code == 3, err  # no orchestrator yet
    assert one_error_line(err).startswith("error: wait: no answer to RegisterStream within 2s")

    children = Children(tmp_path, child_env(kafka_bootstrap, topic_prefix, LOG_FORMAT="json"))
    try:
        orchestrator = children.spawn("orch-json", "orchestrator", orchestrator_args("orch-json"))
        worker = children.spawn(
            "w-json",
            "worker",
            worker_args("w-json", 4, "--log-format", "json"),
            env={"STREAMPLANE_LOG_FORMAT": "text"},  # the flag wins over the environment
        )
        projector = children.spawn("projector-json", "projector", [*CLI, "projector"])
        code, _, err = run(["instances", "drain", "no-such-worker", "--wait", "60", *where])
        assert code == 1, err
        assert one_error_line(err).startswith("error: rejected: unknown_instance: ")

        code, out, err = run(["streams", "add", "s1", "--wait", "60", *where])
        assert code == 0, err
        assert "ok (seq" in out and not err
    finally:
        stubborn = children.stop_all(20.0)
    assert not stubborn, [c.describe() for c in stubborn]
    assert orchestrator.returncode == 0 and worker.returncode == 0
    assert projector.returncode == 0, projector.log_text()[-2000:]

    records = _json_lines(orchestrator.log_text(), "the orchestrator")
    assert any(r["level"] == "INFO" for r in records)
    assert _json_lines(worker.log_text(), "the worker")
    # Faust's worker replaces the root handlers when it starts: its own lines are JSON too
    loggers = {str(r["logger"]) for r in _json_lines(projector.log_text(), "the projector")}
    assert any(name.startswith("faust") for name in loggers), loggers
