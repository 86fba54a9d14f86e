"""Topic names and their settings (see docs/events.md for who writes and reads each)."""

from __future__ import annotations

from typing import NamedTuple

#: where every process looks for Kafka unless ``STREAMPLANE_KAFKA_BOOTSTRAP`` says otherwise
#: (the local stack of ``streamplane infra up``; the compose file publishes the same port)
DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
#: the topic prefix unless ``STREAMPLANE_TOPIC_PREFIX`` says otherwise
DEFAULT_PREFIX = "streamplane"


class TopicSpec(NamedTuple):
    """How a topic is created: partitions, cleanup policy, retention (-1 = forever), and any
    further topic settings it needs (``configs``)."""

    suffix: str
    partitions: int
    compacted: bool
    retention_ms: int
    key: str
    configs: tuple[tuple[str, str], ...] = ()


#: the largest snapshot record the snapshots topic takes unless the snapshot store is told
#: otherwise (``STREAMPLANE_SNAPSHOT_MAX_BYTES``), and the producer's headroom over it
SNAPSHOT_MAX_BYTES = 64 * 1024 * 1024
SNAPSHOT_RECORD_OVERHEAD = 64 * 1024
#: the snapshots topic rolls its segment this often, so compaction drops older snapshots
SNAPSHOT_SEGMENT_MS = 3600 * 1000


EVENTS = TopicSpec("events", 1, False, -1, "none (total order on one partition)")
COMMANDS = TopicSpec("commands", 1, False, 7 * 24 * 3600 * 1000, "command_id")
HEARTBEATS = TopicSpec("heartbeats", 6, False, 3600 * 1000, "server_id")
DESIRED = TopicSpec("desired", 6, True, -1, "server_id")
ASSIGNMENTS = TopicSpec("assignments", 6, True, -1, "stream_id")
SNAPSHOTS = TopicSpec(
    "snapshots",
    1,
    True,
    -1,
    "cluster",
    (
        ("max.message.bytes", str(SNAPSHOT_MAX_BYTES + SNAPSHOT_RECORD_OVERHEAD)),
        ("segment.ms", str(SNAPSHOT_SEGMENT_MS)),
    ),
)
DLQ = TopicSpec("dlq", 1, False, 30 * 24 * 3600 * 1000, "origin topic")
#: compacted: the latest record per key is the alert's status, which the monitor rebuilds its
#: firing set from on start and ``streamplane alerts`` lists, however long an alert has fired
#: the leader's cycle marks (control_plane.decide.marks): as long as the heartbeats they cite
CYCLES = TopicSpec("cycles", 1, False, 3600 * 1000, "none (one record per leader transaction)")
ALERTS = TopicSpec("alerts", 1, True, -1, "alert key (rule:subject)")

ALL_TOPICS: tuple[TopicSpec, ...] = (
    EVENTS,
    COMMANDS,
    HEARTBEATS,
    DESIRED,
    ASSIGNMENTS,
    SNAPSHOTS,
    DLQ,
    ALERTS,
    CYCLES,
)


class Topics(NamedTuple):
    """Concrete topic names under one prefix (default ``streamplane``); tests use their own."""

    prefix: str = DEFAULT_PREFIX

    def name(self, spec: TopicSpec) -> str:
        return f"{self.prefix}.{spec.suffix}"

    @property
    def events(self) -> str:
        return self.name(EVENTS)

    @property
    def commands(self) -> str:
        return self.name(COMMANDS)

    @property
    def heartbeats(self) -> str:
        return self.name(HEARTBEATS)

    @property
    def desired(self) -> str:
        return self.name(DESIRED)

    @property
    def assignments(self) -> str:
        return self.name(ASSIGNMENTS)

    @property
    def snapshots(self) -> str:
        return self.name(SNAPSHOTS)

    @property
    def dlq(self) -> str:
        return self.name(DLQ)

    @property
    def alerts(self) -> str:
        return self.name(ALERTS)

    @property
    def cycles(self) -> str:
        return self.name(CYCLES)


def projector_app_id(prefix: str, projector_id: str | None = None) -> str:
    """The Faust app id of the projector of ``prefix`` (``STREAMPLANE_PROJECTOR_ID``
    overrides it): its consumer group and the stem of its tables' changelog topics."""
    return projector_id or f"{prefix}-projector"


def changelog_topic(app_id: str, table: str) -> str:
    """The topic Faust keeps the projector's ``table`` in (``<app id>-<table>-changelog``);
    keys and values are JSON (docs/projections.md)."""
    return f"{app_id}-{table}-changelog"
