"""The broker configuration `streamplane infra up` writes, checked without starting it."""

from __future__ import annotations

import pytest

from control_plane.tools.infra import kafka, kafka_cluster


def _properties(brokers: int) -> dict[str, str]:
    cluster = kafka_cluster(brokers)
    text = kafka._properties(cluster, cluster.nodes[0])
    return dict(line.split("=", 1) for line in text.splitlines())


@pytest.mark.parametrize("brokers", [1, 3])
def test_brokers_never_auto_create_topics(brokers: int) -> None:
    # topics come from ensure_topics with the contract's settings, never from a first reader
    assert _properties(brokers)["auto.create.topics.enable"] == "false"


def test_three_brokers_keep_two_in_sync_replicas() -> None:
    props = _properties(3)
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
