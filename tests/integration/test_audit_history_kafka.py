"""``streamplane audit instance`` and ``audit churn`` on real Kafka over a generated history:
the command's JSON is the pure view's, an unknown instance is one ``error:`` line and exit
1, and a bad window is a usage error naming the option."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from typer.testing import CliRunner

from control_plane.cli.main import app
from projections.fold.audit_instance import instance_history, intervals
from projections.fold.churn import churn
from tests.integration.test_audit_kafka import HISTORY, _publish

pytestmark = pytest.mark.integration


def _cli(bootstrap: str, prefix: str, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app, ["audit", *args, "--bootstrap", bootstrap, "--topic-prefix", prefix]
    )
    return result.exit_code, result.stdout, result.stderr


def test_instance_and_churn_over_a_published_log(kafka_bootstrap: str, topic_prefix: str) -> None:
    _publish(kafka_bootstrap, topic_prefix, HISTORY)
    servers = Counter(getattr(e, "server_id", None) for e in HISTORY)
    server = next(s for s, _ in servers.most_common() if s is not None)
    want = instance_history(HISTORY, server)
    assert len(want.steps) > 5 and intervals(want)

    code, out, _ = _cli(kafka_bootstrap, topic_prefix, "instance", server, "--json")
    assert code == 0
    doc = json.loads(out)
    assert [s["seq"] for s in doc["steps"]] == [s.seq for s in want.steps]
    assert [s["reason"] for s in doc["steps"]] == [s.reason for s in want.steps]
    assert [(h["stream_id"], h["since_seq"], h["until_seq"]) for h in doc["held"]] == [
        (h.stream_id, h.since_seq, h.until_seq) for h in intervals(want)
    ]
    code, out, _ = _cli(kafka_bootstrap, topic_prefix, "instance", server)
    assert code == 0 and f"seq {want.steps[0].seq} epoch " in out and "\nheld:\n" in out

    code, out, err = _cli(kafka_bootstrap, topic_prefix, "instance", "no-such-worker")
    assert (code, out) == (1, "")
    assert err.strip() == "error: server_id: no event in the log concerns instance 'no-such-worker'"

    since, until = HISTORY[1000].time, HISTORY[2500].time
    code, out, _ = _cli(
        kafka_bootstrap, topic_prefix, "churn", "--since", since.isoformat(),
        "--until", until.isoformat(), "--json",
    )  # fmt: skip
    assert code == 0
    expected = churn(HISTORY, since=since, until=until).as_dict()
    assert json.loads(out) == json.loads(json.dumps(expected))
    assert expected["moves"] > 0 and expected["unowned_stream_s"] > 0

    code, out, _ = _cli(kafka_bootstrap, topic_prefix, "churn", "--since", since.isoformat())
    assert code == 0 and out.startswith(f"window {since.isoformat()} -> ")
    assert "moves: " in out and "unowned: " in out


def test_a_bad_window_is_a_usage_error() -> None:
    code, _, err = _cli("127.0.0.1:1", "x", "churn", "--since", "yesterday")
    assert code == 2 and err.startswith("error: --since: not an ISO 8601 time")
    code, _, err = _cli(
        "127.0.0.1:1", "x", "churn", "--since", "2026-01-02", "--until", "2026-01-01"
    )
    assert code == 2 and err.startswith("error: --until: ")
