"""``python -m projections.projector`` ends a failed start as ``streamplane`` does: one
``error:`` line naming the setting, the CLI's exit code, no traceback (the process is what
``streamplane projector`` and the compose service run)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from projections.errors import TopicContractError
from projections.projector.run import FAILED, start_failure


def _start(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STREAMPLANE_")}
    return subprocess.run(
        [sys.executable, "-m", "projections.projector"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize(
    ("env", "code", "field"),
    [
        ({"STREAMPLANE_PROJECTOR_KAFKA_TIMEOUT": "abc"}, 2, "projector_kafka_timeout"),
        # a closed loopback port: nothing listens there
        (
            {
                "STREAMPLANE_KAFKA_BOOTSTRAP": "127.0.0.1:1",
                "STREAMPLANE_PROJECTOR_KAFKA_TIMEOUT": "2",
            },
            3,
            "kafka_bootstrap",
        ),
    ],
)
def test_a_failed_start_is_one_line_naming_the_setting(
    env: dict[str, str], code: int, field: str
) -> None:
    done = _start(**env)
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith(f"error: {field}: "), done.stderr


def test_a_topic_against_the_contract_fails_without_a_retry_hint() -> None:
    known = start_failure(TopicContractError("sp.events: retention.ms is 604800000, want -1"))
    assert known == (FAILED, "error: sp.events: retention.ms is 604800000, want -1")
    assert start_failure(RuntimeError("a bug")) is None
