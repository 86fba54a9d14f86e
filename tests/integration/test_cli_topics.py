"""``streamplane topics`` creates every topic with the partitions events.topics asks for,
and a second run changes nothing (it is what the compose ``topics`` service runs)."""

from __future__ import annotations

import asyncio

import pytest
from typer.testing import CliRunner

from control_plane.cli import app
from events.topics import ALL_TOPICS, Topics
from projections.io.kafka import end_offsets

pytestmark = pytest.mark.integration


def test_topics_creates_every_topic_once(kafka_bootstrap: str, topic_prefix: str) -> None:
    runner = CliRunner()
    args = ["topics", "--bootstrap", kafka_bootstrap, "--topic-prefix", topic_prefix]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    names = Topics(topic_prefix)
    for spec in ALL_TOPICS:
        partitions = asyncio.run(end_offsets(kafka_bootstrap, names.name(spec)))
        assert sorted(partitions) == list(range(spec.partitions))
        assert f"{names.name(spec)}: {spec.partitions} partition(s)" in first.output
    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert "ready" in again.output


def test_topics_against_no_broker_is_one_clear_error() -> None:
    import sys

    from control_plane.cli import main

    argv = sys.argv
    sys.argv = ["streamplane", "topics", "--bootstrap", "127.0.0.1:9", "--topic-prefix", "x"]
    try:
        with pytest.raises(SystemExit) as exit_:
            main()
    finally:
        sys.argv = argv
    assert exit_.value.code == 3
