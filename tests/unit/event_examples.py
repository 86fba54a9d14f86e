"""A valid, fully populated example of every message type, for any test to import.

``example("StreamAssigned", stream_id="camera-9")`` builds one (overrides replace fields);
``all_examples()`` gives one per type in :data:`events.MESSAGE_TYPES`. Values are fixed so
tests stay deterministic; optional fields are filled in so round trips exercise them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from events.base import Message
from events.codec import MESSAGE_TYPES

T0 = datetime(2026, 11, 28, 20, 0, 0, 123456, tzinfo=UTC)

_METRICS = {"cpu_percent": 41.5, "memory_mb": 812.0, "avg_latency_ms": 12.5, "error_rate": 0.01}

_ENVELOPE: dict[str, Any] = {
    "id": "evt-0001",
    "source": "streamplane/orchestrator",
    "time": T0,
    "causationid": "cmd-7",
    "correlationid": "corr-3",
}
_LOG_POSITION = {"seq": 42, "epoch": 3}

#: an Ed25519 public key (base64 of 32 bytes; any 32 bytes pass the schema)
_PUBLIC_KEY = "A" * 43 + "="
_INSTANCE = {"server_id": "w-1", "incarnation": "w-1.inc-a"}
_STREAM = {"stream_id": "camera-17"}

_DATA: dict[str, dict[str, Any]] = {
    "LeaderElected": {"leader_id": "orch-a"},
    "InstanceRegistered": {
        **_INSTANCE,
        "ip": "10.0.0.7",
        "port": 8080,
        "max_streams": 10,
        "zone": "eu-1a",
        "tags": ("gpu", "edge"),
    },
    "InstanceSuspected": {**_INSTANCE, "last_heartbeat": T0 - timedelta(seconds=3)},
    "InstanceRecovered": {**_INSTANCE},
    "InstanceFailed": {**_INSTANCE, "reason": "instance_failed"},
    "InstanceQuarantined": {
        "server_id": "w-1",
        "until": T0 + timedelta(minutes=5),
        "reason": "flapping",
    },
    "InstanceDraining": {"server_id": "w-1", "reason": "operator"},
    "InstanceUndrained": {"server_id": "w-1", "reason": "operator"},
    "InstanceDrained": {"server_id": "w-1"},
    "InstanceDeregistered": {**_INSTANCE, "reason": "instance_left"},
    "InstanceCapacityChanged": {"server_id": "w-1", "max_streams": 12, "reason": "operator"},
    "PerformanceSampled": {"server_id": "w-1", "metrics": _METRICS},
    "StreamRegistered": {
        **_STREAM,
        "weight": 3,
        "priority": 5,
        "zone": "eu-1a",
        "anti_affinity": "lobby",
        "params": {"url": "rtsp://cam17/stream"},
    },
    "StreamDeregistered": {**_STREAM, "reason": "operator"},
    "StreamAssigned": {**_STREAM, **_INSTANCE, "reason": "new_stream"},
    "StreamUnassigned": {**_STREAM, "server_id": "w-1", "reason": "no_capacity"},
    "StreamStarted": {**_STREAM, **_INSTANCE},
    "StreamFailed": {
        **_STREAM,
        "server_id": "w-1",
        "error": "connection refused",
        "parked": True,
        "reason": "poison",
    },
    "StreamWaiting": {**_STREAM, "reason": "no_capacity"},
    "MigrationStarted": {
        **_STREAM,
        "migration_id": "mig-1",
        "from_server": "w-1",
        "to_server": "w-2",
        "to_incarnation": "w-2.inc-a",
        "deadline": T0 + timedelta(seconds=30),
        "reason": "rebalance",
        "plan_id": "plan-1",
    },
    "MigrationCompleted": {**_STREAM, "migration_id": "mig-1"},
    "MigrationAborted": {**_STREAM, "migration_id": "mig-1", "reason": "timeout"},
    "RebalancePlanned": {
        "plan_id": "plan-1",
        "dry_run": False,
        "moves": (
            {"stream_id": "camera-17", "from_server": "w-1", "to_server": "w-2", "gain": 0.25},
            {"stream_id": "42", "from_server": "w-1", "to_server": "w-3", "reason": "drain"},
        ),
        "lower_bound": 2,
        "score_before": 0.61,
        "score_after": 0.93,
        "reason": "rebalance",
    },
    "RebalanceCompleted": {"plan_id": "plan-1", "completed": 1, "aborted": 1, "skipped": 2},
    "ConsistencyDivergenceFound": {
        "check_id": "chk-1",
        "kind": "orphaned",
        "stream_id": "camera-17",
        "server_id": "w-1",
        "detail": "owner w-1 failed; stream has no owner",
    },
    "ConsistencyDivergenceRepaired": {
        "check_id": "chk-1",
        "kind": "orphaned",
        "action": "StreamAssigned to w-2",
        "stream_id": "camera-17",
        "server_id": "w-2",
    },
    "CommandRejected": {
        "command_id": "cmd-7",
        "command_type": "DrainInstance",
        "reason": "unknown_instance",
        "detail": "no instance w-9",
    },
    "CommandCompleted": {"command_id": "cmd-7", "command_type": "DrainInstance", "detail": ""},
    "MaintenanceModeEntered": {"reason": "mass_failure", "detail": "7 of 10 instances silent"},
    "MaintenanceModeLeft": {"reason": "operator"},
    "InstanceEnrolled": {
        "server_id": "w-1",
        "public_key": _PUBLIC_KEY,
        "key_id": "66687aadf862bd77",
        "enrolled_by": "streamplane/cli",
    },
    "InstanceRevoked": {
        "server_id": "w-1",
        "key_id": "66687aadf862bd77",
        "revoked_by": "streamplane/cli",
        "reason": "operator",
    },
    "RegisterStream": {
        **_STREAM,
        "weight": 2,
        "priority": 1,
        "zone": "eu-1a",
        "anti_affinity": "lobby",
        "params": {"url": "rtsp://cam17/stream"},
    },
    "DeregisterStream": {**_STREAM},
    "DrainInstance": {"server_id": "w-1"},
    "UndrainInstance": {"server_id": "w-1"},
    "SetCapacity": {"server_id": "w-1", "max_streams": 20},
    "RequestRebalance": {"dry_run": False},
    "RunConsistencyCheck": {
        "repair": True,
        "divergences": (
            {"kind": "orphaned", "view": "state", "stream_id": "camera-17", "detail": "silent"},
        ),
    },
    "EmergencyRecovery": {},
    "EnrollInstance": {"server_id": "w-1", "public_key": _PUBLIC_KEY},
    "RevokeInstance": {"server_id": "w-1"},
    "Heartbeat": {
        **_INSTANCE,
        "ip": "2001:db8::7",
        "port": 8080,
        "max_streams": 10,
        "zone": "eu-1a",
        "tags": ("gpu",),
        "sent_at": "2026-11-28T20:00:00.100Z",
        "streams": (
            {
                "stream_id": "camera-17",
                "state": "running",
                "performance": {"latency_ms": 8.0, "throughput": 25.0, "restarts": 1},
            },
            {"stream_id": "42", "state": "failed", "error": "decoder crashed"},
        ),
        "metrics": _METRICS,
        "desired_mismatch": ("43",),
        "leaving": False,
        "desired_seq": 41,
    },
    "DesiredSet": {
        **_INSTANCE,
        "streams": ("camera-17", "42"),
        "params": {"camera-17": {"url": "rtsp://cam17/stream"}},
        "fenced": False,
    },
    "AlertFired": {
        "key": "zone_failures:eu-1a",
        "rule": "zone_failures",
        "severity": "critical",
        "summary": "2 instances of zone eu-1a went down in 5 min",
        "evidence": {"zone": "eu-1a", "instances": "w-1,w-2"},
        "action": "check zone eu-1a's network and hosts",
        "held_back": 1,
    },
    "AlertResolved": {
        "key": "dead_letters:cluster",
        "rule": "dead_letters",
        "severity": "warning",
        "summary": "dead letters appeared (total 3)",
        "evidence": {"total": "3"},
        "action": "read the newest dead letters",
    },
}


def example_fields(type_name: str) -> dict[str, Any]:
    """The validated-input fields of the example of ``type_name`` (a fresh dict)."""
    cls = MESSAGE_TYPES[type_name]
    fields: dict[str, Any] = dict(_ENVELOPE)
    if cls.FAMILY == "command":
        fields["command_id"] = "cmd-7"
        fields["source"] = "streamplane/cli"
    elif cls.FAMILY == "heartbeat":
        fields["source"] = "streamplane/worker/w-1"
        fields["causationid"] = fields["correlationid"] = None
    elif cls.FAMILY == "alert":
        fields["source"] = "streamplane/monitor"
        fields["causationid"] = fields["correlationid"] = None
    if "principal" in cls.model_fields:  # commands and control events: who issued it
        fields["principal"] = "ops-alice"
    # an alert carries the seq it is as of, but no epoch
    fields.update({k: v for k, v in _LOG_POSITION.items() if k in cls.model_fields})
    fields.update(_DATA[type_name])
    return fields


def example(type_name: str, **overrides: Any) -> Message:
    """A valid ``type_name`` message; ``overrides`` replace (or add) fields."""
    fields = example_fields(type_name)
    fields.update(overrides)
    return MESSAGE_TYPES[type_name].model_validate(fields)


def all_examples() -> list[Message]:
    """One example of every type in :data:`events.MESSAGE_TYPES`, in that order."""
    return [example(name) for name in MESSAGE_TYPES]
