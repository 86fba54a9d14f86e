"""Pure: what changed between two fold states, as rows and ``streamplane.assignments`` records.

Every materialisation of the fold (the Faust tables, the analytics topic, the PostgreSQL read
model) needs the same two things after ``after = apply(before, event)``: *which* streams and
instances changed, and their plain-JSON form. Both live here, once.

Record shape on ``<prefix>.assignments`` (key ``stream_id``; see docs/events.md)::

    {"stream_id": "camera-17", "server_id": "w-1", "incarnation": "w-1.inc-a",
     "status": "migrating",
     "migration": {"migration_id": "mig-1", "to_server": "w-2", "to_incarnation": "w-2.b",
                   "started_at": "...", "deadline": "..."},
     "reason": "rebalance", "assigned_at": "...", "as_of_seq": 1043, "epoch": 3,
     "time": "2026-11-28T20:00:00.123000Z"}

A deregistered stream gets a tombstone (value ``None``). ``reason`` is the ``reason`` of the
event that changed the stream, or its type in snake_case when the event has none
(``stream_started``); :data:`RESYNC_REASON` when a projector re-publishes on start.

Finding the changed keys must not cost O(streams) per event. The projections fold with
:func:`projections.fold.apply_tracked` (or a ``TrackingDraft``), which records the keys the
event wrote. :func:`changes` finds them from two states instead: a map the fold did not
touch is the *same object* (``immutables.Map`` is persistent), and the fold only ever
touches the event's subject and the instances that subject's stream names (owner,
migration target); events without a subject that still change a map fall back to a full
comparison. ``tests/unit/test_assignments*.py`` checks all three ways against each other on
generated histories.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import immutables
import orjson
from pydantic import BaseModel

from events.base import ControlEvent
from events.control import PROJECTOR_REWRITE
from events.heartbeat import Heartbeat, StreamRunState
from projections.fold.state import ClusterState, EnhancedInstance, StreamAssignment
from projections.fold.text import without_nul
from projections.fold.transitions.draft import Changes

#: the ``reason`` of records a projector writes when it re-publishes a stream on start
RESYNC_REASON = "projector_resync"
#: the ``reason`` of a table entry the projector wrote again on a checker's repair
TABLE_REPAIR_REASON = "consistency_repair"
#: how JSON writes a NUL; a value whose JSON holds it gets projections.fold.text's cleaning
_ESCAPED_NUL = b"\\u0000"
#: fields of an assignment record that describe the stream (the rest says when and why)
ASSIGNMENT_CONTENT = ("stream_id", "server_id", "incarnation", "status", "migration", "assigned_at")
#: fields of an instance value that are bookkeeping, not content
_INSTANCE_META = frozenset({"as_of_seq"})

JsonDict = dict[str, Any]
_V = TypeVar("_V")


class Update(NamedTuple):
    """One changed key and its new value; ``value`` is None when the key is gone."""

    key: str
    value: JsonDict | None


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a ``Z``, as the codec writes times (``None`` stays ``None``)."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def event_reason(event: ControlEvent) -> str:
    """The event's ``reason``, or its type in snake_case when it carries none."""
    reason = getattr(event, "reason", None)
    return reason if isinstance(reason, str) else _snake(type(event).__name__)


def _default(value: object) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, frozenset):
        return sorted(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def _plain(value: object) -> Any:
    # orjson writes dataclasses, enums and datetimes natively; one round trip gives plain data
    raw = orjson.dumps(value, default=_default, option=orjson.OPT_UTC_Z)
    if _ESCAPED_NUL in raw:  # rare: a NUL (or a literal backslash-u0000) in some text
        return without_nul(orjson.loads(raw))
    return orjson.loads(raw)


# --- values -----------------------------------------------------------------------------


def assignment_value(
    stream: StreamAssignment, *, seq: int, epoch: int, time: datetime | None, reason: str
) -> JsonDict:
    """The ``streamplane.assignments`` record value of ``stream`` as of control-log ``seq``."""
    m = stream.migration_state
    migration = None
    if m is not None:
        migration = {
            "migration_id": m.migration_id,
            "to_server": m.to_server,
            "to_incarnation": m.to_incarnation,
            "started_at": iso(m.started_at),
            "deadline": iso(m.deadline),
        }
    return {
        "stream_id": stream.stream_id,
        "server_id": stream.server_id,
        "incarnation": stream.incarnation,
        "status": stream.status.value,
        "migration": migration,
        "reason": reason,
        "assigned_at": iso(stream.assigned_at),
        "as_of_seq": seq,
        "epoch": epoch,
        "time": iso(time),
    }


def same_assignment(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two assignment records describe the same stream placement (ignoring
    ``reason``, ``as_of_seq``, ``epoch`` and ``time``)."""
    if a is None or b is None:
        return a is b
    return all(a.get(k) == b.get(k) for k in ASSIGNMENT_CONTENT)


def instance_value(inst: EnhancedInstance, *, seq: int) -> JsonDict:
    """An instance as plain JSON (every ``EnhancedInstance`` field, plus ``load_factor``,
    ``drained`` and ``as_of_seq``)."""
    data: JsonDict = _plain(inst)
    factor = inst.calculate_load_factor()
    data["load_factor"] = factor if factor != float("inf") else None
    data["drained"] = inst.drained
    data["as_of_seq"] = seq
    return data


def same_instance(a: Mapping[str, Any] | None, b: Mapping[str, Any] | None) -> bool:
    """Whether two instance values are equal bar bookkeeping (``as_of_seq``)."""
    if a is None or b is None:
        return a is b
    keys = (set(a) | set(b)) - _INSTANCE_META
    return all(a.get(k) == b.get(k) for k in keys)


def stream_value(stream: StreamAssignment) -> JsonDict:
    """Every ``StreamAssignment`` field as plain JSON (for the read model and the API)."""
    data: JsonDict = _plain(stream)
    return data


# --- what changed -----------------------------------------------------------------------


def _diff_keys(before: immutables.Map[str, _V], after: immutables.Map[str, _V]) -> set[str]:
    """Full comparison: keys whose value is not the same object (or is gone/new)."""
    changed = {k for k, v in after.items() if before.get(k) is not v}
    changed.update(k for k in before if k not in after)
    return changed


def _servers_of(stream: StreamAssignment | None) -> Iterator[str]:
    if stream is None:
        return
    if stream.server_id is not None:
        yield stream.server_id
    if stream.migration_state is not None:
        yield stream.migration_state.from_server
        yield stream.migration_state.to_server


def _candidates(
    before: ClusterState, after: ClusterState, event: ControlEvent
) -> tuple[set[str], set[str]] | None:
    """(instance ids, stream ids) the fold may have touched, or None when unknown."""
    subject = event.subject
    if subject is None:
        return None
    field = type(event).SUBJECT_FIELD
    if field == "stream_id":
        servers = {
            *_servers_of(before.streams.get(subject)),
            *_servers_of(after.streams.get(subject)),
        }
        for name in ("server_id", "from_server", "to_server"):
            value = getattr(event, name, None)
            if isinstance(value, str):
                servers.add(value)
        return servers, {subject}
    if field == "server_id":
        return {subject}, set()
    return None


def _changed(
    before: immutables.Map[str, _V], after: immutables.Map[str, _V], keys: set[str] | None
) -> tuple[str, ...]:
    if before is after:
        return ()
    if keys is None:
        keys = _diff_keys(before, after)
    return tuple(sorted(k for k in keys if before.get(k) is not after.get(k)))


def changes(before: ClusterState, after: ClusterState, event: ControlEvent) -> Changes:
    """The instances and streams whose value differs between ``before`` and ``after``
    (``after = apply(before, event)``)."""
    candidates = _candidates(before, after, event)
    servers, streams = candidates if candidates is not None else (None, None)
    return Changes(
        _changed(before.instances, after.instances, servers),
        _changed(before.streams, after.streams, streams),
    )


def assignment_updates(
    after: ClusterState, event: ControlEvent, stream_ids: tuple[str, ...]
) -> list[Update]:
    """The records to publish for the changed ``stream_ids`` (a tombstone for a stream the
    state no longer has)."""
    reason = event_reason(event)
    updates = []
    for sid in stream_ids:
        stream = after.streams.get(sid)
        value = None
        if stream is not None:
            value = assignment_value(
                stream, seq=event.seq, epoch=after.epoch, time=event.time, reason=reason
            )
        updates.append(Update(sid, value))
    return updates


def instance_updates(after: ClusterState, server_ids: tuple[str, ...]) -> list[Update]:
    """New instance values for the changed ``server_ids`` (None for an instance gone)."""
    out = []
    for server_id in server_ids:
        inst = after.instances.get(server_id)
        out.append(Update(server_id, None if inst is None else instance_value(inst, seq=after.seq)))
    return out


def table_repairs(after: ClusterState, event: ControlEvent) -> list[tuple[str, Update]]:
    """The projector's table entries that ``event`` asks it to write again, as ``(table,
    update)``: a ``ConsistencyDivergenceRepaired`` whose action is ``PROJECTOR_REWRITE``
    names a stream (its ``assignments`` entry, reason :data:`TABLE_REPAIR_REASON`) or a
    server (its ``instances`` entry), each as of ``after`` (or a tombstone)."""
    if getattr(event, "action", None) != PROJECTOR_REWRITE:
        return []
    out: list[tuple[str, Update]] = []
    sid = getattr(event, "stream_id", None)
    if sid is not None:
        stream = after.streams.get(sid)
        value = None
        if stream is not None:
            value = assignment_value(
                stream,
                seq=after.seq,
                epoch=after.epoch,
                time=after.last_event_time,
                reason=TABLE_REPAIR_REASON,
            )
        out.append(("assignments", Update(sid, value)))
    server = getattr(event, "server_id", None)
    if server is not None:
        inst = after.instances.get(server)
        value = None if inst is None else instance_value(inst, seq=after.seq)
        out.append(("instances", Update(server, value)))
    return out


def resync_assignments(
    state: ClusterState, current: Mapping[str, Mapping[str, Any]]
) -> list[Update]:
    """What to publish so that ``current`` (stream_id -> last published record) matches
    ``state``: changed or new streams with reason :data:`RESYNC_REASON`, tombstones for
    streams the state lacks. Used by a projector on start."""
    updates = []
    for sid, stream in sorted(state.streams.items()):
        value = assignment_value(
            stream,
            seq=state.seq,
            epoch=state.epoch,
            time=state.last_event_time,
            reason=RESYNC_REASON,
        )
        if not same_assignment(current.get(sid), value):
            updates.append(Update(sid, value))
    updates.extend(Update(sid, None) for sid in sorted(current) if sid not in state.streams)
    return updates


def resync_instances(state: ClusterState, current: Mapping[str, Mapping[str, Any]]) -> list[Update]:
    """Like :func:`resync_assignments` for instance values."""
    updates = []
    for server_id, inst in sorted(state.instances.items()):
        value = instance_value(inst, seq=state.seq)
        if not same_instance(current.get(server_id), value):
            updates.append(Update(server_id, value))
    updates.extend(Update(k, None) for k in sorted(current) if k not in state.instances)
    return updates


# --- liveness (folded from heartbeats by the Faust projector) ---------------------------


def liveness_value(heartbeat: Heartbeat) -> JsonDict:
    """What the ``liveness`` table keeps per ``server_id``: the last heartbeat's time,
    incarnation, how many streams it reported (and in which state) and its metrics."""
    running = sum(1 for s in heartbeat.streams if s.state is StreamRunState.RUNNING)
    failed = sum(1 for s in heartbeat.streams if s.state is StreamRunState.FAILED)
    return {
        "server_id": heartbeat.server_id,
        "incarnation": heartbeat.incarnation,
        "last_heartbeat": iso(heartbeat.time),
        "streams": len(heartbeat.streams),
        "running": running,
        "failed": failed,
        "max_streams": heartbeat.max_streams,
        "metrics": heartbeat.metrics.model_dump(mode="json"),
        "leaving": heartbeat.leaving,
        "desired_seq": heartbeat.desired_seq,
    }


def liveness_supersedes(new: Mapping[str, Any], old: Mapping[str, Any] | None) -> bool:
    """Whether ``new`` should replace ``old``: heartbeats may arrive out of order across a
    producer retry, and an older one must not roll the time back. A new incarnation always
    wins (the process restarted)."""
    if old is None or old.get("incarnation") != new.get("incarnation"):
        return True
    return str(new["last_heartbeat"]) >= str(old.get("last_heartbeat") or "")


__all__ = [
    "ASSIGNMENT_CONTENT",
    "RESYNC_REASON",
    "TABLE_REPAIR_REASON",
    "table_repairs",
    "Changes",
    "Update",
    "assignment_updates",
    "assignment_value",
    "changes",
    "event_reason",
    "instance_updates",
    "instance_value",
    "iso",
    "liveness_supersedes",
    "liveness_value",
    "resync_assignments",
    "resync_instances",
    "same_assignment",
    "same_instance",
    "stream_value",
]
