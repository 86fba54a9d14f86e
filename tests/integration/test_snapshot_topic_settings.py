"""The snapshots topic's settings on a real broker: created with the record size and segment
time snapshots need (so a principal without ALTER_CONFIGS can write them), and when the store
is set for more it alters the topic without dropping the contract's other settings (a Kafka
alter replaces every override: min.insync.replicas and retention used to fall back to the
broker's defaults, and the next start found the topic against the contract)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from events.topics import SNAPSHOT_RECORD_OVERHEAD, SNAPSHOTS, Topics
from projections.fold import fold
from projections.fold.snapshots import make_snapshot
from projections.io.kafka import make_admin, started
from projections.io.snapshot_store import SnapshotSettings, SnapshotStore
from projections.io.topics import ensure_topics, topic_config
from projections.testing.synthetic import generate_history

pytestmark = pytest.mark.integration

#: DescribeConfigs v1+: where a value comes from; 1 is an override on the topic itself
DYNAMIC_TOPIC_CONFIG = 1
KEYS = (*topic_config(SNAPSHOTS, 1), "max.message.bytes", "segment.ms")


async def _overrides(bootstrap: str, topic: str) -> dict[str, str]:
    """The topic's own settings (not the broker's defaults)."""
    admin = make_admin(bootstrap)
    async with started(admin, what="admin"):
        resource = ConfigResource(ConfigResourceType.TOPIC, topic, dict.fromkeys(KEYS))
        [response] = await admin.describe_configs([resource])
    [(error, _message, _type, _name, entries)] = [r[:5] for r in response.resources]
    assert error == 0
    return {e[0]: e[1] for e in entries if e[3] == DYNAMIC_TOPIC_CONFIG}


async def test_the_topic_is_made_for_snapshots_and_an_alter_keeps_the_contract(
    kafka_bootstrap: str, topic_prefix: str
) -> None:
    topics = Topics(topic_prefix)
    await ensure_topics(kafka_bootstrap, topics, (SNAPSHOTS,))
    created = await _overrides(kafka_bootstrap, topics.snapshots)
    assert created == topic_config(SNAPSHOTS, 1)
    assert int(created["max.message.bytes"]) == (
        SnapshotSettings().max_bytes + SNAPSHOT_RECORD_OVERHEAD
    )
    snapshot = make_snapshot(fold(generate_history(300, seed=5)), log_offset=300, taken_at=
                             datetime(2026, 6, 1, tzinfo=UTC))  # fmt: skip

    async with SnapshotStore(kafka_bootstrap, topics) as store:  # the defaults: nothing to do
        await store.write(snapshot)
    assert await _overrides(kafka_bootstrap, topics.snapshots) == created

    bigger = SnapshotSettings(max_bytes=128 * 1024 * 1024, segment_ms=600_000)
    async with SnapshotStore(kafka_bootstrap, topics, settings=bigger) as store:
        await store.write(snapshot)
        assert (await store.latest()) == snapshot
    after = await _overrides(kafka_bootstrap, topics.snapshots)
    assert after == {
        **created,
        "max.message.bytes": str(128 * 1024 * 1024 + SNAPSHOT_RECORD_OVERHEAD),
        "segment.ms": "600000",
    }
    # and the contract still holds: a process starting now is not refused
    await ensure_topics(kafka_bootstrap, topics, (SNAPSHOTS,))
