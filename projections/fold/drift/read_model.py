"""Drift of the PostgreSQL read model: its rows against ``fold(log[:next_offset])``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from projections.fold.assignments import (
    JsonDict,
    assignment_value,
    instance_value,
    iso,
    stream_value,
)
from projections.fold.drift.report import Drift, DriftReport, Projection
from projections.fold.state import ClusterState, EnhancedInstance, StreamAssignment
from projections.fold.text import without_nul

#: ``streams`` columns compared (``reason`` and ``as_of_seq`` are bookkeeping)
STREAM_COLUMNS = (
    "server_id", "incarnation", "status", "weight", "priority", "assigned_at", "migration", "data",
)  # fmt: skip
#: ``instances`` columns compared (``as_of_seq`` is the batch's seq, and left out of ``data``)
INSTANCE_COLUMNS = (
    "incarnation", "status", "draining", "max_streams", "current_streams", "load", "zone",
    "last_heartbeat", "data",
)  # fmt: skip
#: ``cluster`` columns compared
CLUSTER_COLUMNS = ("seq", "epoch", "leader_id", "maintenance", "finding_count")


def _plain(value: Any) -> Any:
    """Database values as JSON: datetimes as ISO UTC with ``Z`` (like the codec)."""
    if isinstance(value, datetime):
        return iso(value.astimezone(UTC))
    return value


def _differing(expected: Mapping[str, Any], found: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(k for k in expected if expected[k] != found.get(k))


def _diff_rows(
    table: str,
    expected: Mapping[str, JsonDict],
    found: Mapping[str, JsonDict],
    as_of_seq: int,
) -> list[Drift]:
    out = []
    for key in sorted(set(expected) | set(found)):
        exp, got = expected.get(key), found.get(key)
        if exp is not None and got is not None:
            fields = _differing(exp, got)
            if not fields:
                continue
        else:
            fields = ()
        out.append(Drift(Projection.READ_MODEL, table, key, exp, got, fields, as_of_seq))
    return out


class ReadModelRows(NamedTuple):
    """What the shell read from the read model, in one snapshot transaction."""

    #: the tracking row: next log offset to apply and the seq it reached
    next_offset: int
    last_seq: int
    streams: Sequence[Mapping[str, Any]]
    instances: Sequence[Mapping[str, Any]]
    #: this projection's ``cluster`` row (None: missing)
    cluster: Mapping[str, Any] | None
    #: stream_id -> migration_id of the ``migrations`` rows still ``in_flight``
    in_flight: Mapping[str, str]


def expected_stream_row(stream: StreamAssignment) -> JsonDict:
    """The compared columns of ``stream``'s ``streams`` row, as JSON."""
    record = assignment_value(stream, seq=0, epoch=0, time=None, reason="")
    return {
        "server_id": stream.server_id,
        "incarnation": stream.incarnation,
        "status": stream.status.value,
        "weight": stream.weight,
        "priority": stream.priority,
        "assigned_at": iso(stream.assigned_at),
        "migration": record["migration"],
        "data": stream_value(stream),
    }


def expected_instance_row(inst: EnhancedInstance) -> JsonDict:
    """The compared columns of ``inst``'s ``instances`` row, as JSON."""
    data = instance_value(inst, seq=0)
    del data["as_of_seq"]
    return {
        "incarnation": inst.incarnation,
        "status": inst.status.value,
        "draining": inst.draining,
        "max_streams": inst.max_streams,
        "current_streams": inst.current_streams,
        "load": inst.load,
        "zone": without_nul(inst.zone),
        "last_heartbeat": iso(inst.last_heartbeat),
        "data": data,
    }


def _found_row(row: Mapping[str, Any], columns: tuple[str, ...]) -> JsonDict:
    found = {c: _plain(row.get(c)) for c in columns}
    if isinstance(found.get("data"), dict) and "as_of_seq" in found["data"]:
        found["data"] = {k: v for k, v in found["data"].items() if k != "as_of_seq"}
    return found


def compare_read_model(
    state: ClusterState, rows: ReadModelRows, *, head_seq: int, lag: int
) -> DriftReport:
    """Compare the read model with ``state`` = ``fold(log[:rows.next_offset])``: every
    ``streams``/``instances`` row, the ``cluster`` row, migrations in flight, the tracking
    row's seq. ``head_seq``/``lag`` describe the log beyond it (reported, not judged)."""
    seq = state.seq
    drifts = _diff_rows(
        "streams",
        {k: expected_stream_row(s) for k, s in state.streams.items()},
        {str(r["stream_id"]): _found_row(r, STREAM_COLUMNS) for r in rows.streams},
        seq,
    )
    drifts += _diff_rows(
        "instances",
        {k: expected_instance_row(i) for k, i in state.instances.items()},
        {str(r["server_id"]): _found_row(r, INSTANCE_COLUMNS) for r in rows.instances},
        seq,
    )
    cluster_expected = {
        "seq": state.seq,
        "epoch": state.epoch,
        "leader_id": state.leader_id,
        "maintenance": state.maintenance,
        "finding_count": state.finding_count,
    }
    found_cluster = None if rows.cluster is None else _found_row(rows.cluster, CLUSTER_COLUMNS)
    drifts += _diff_rows(
        "cluster",
        {"cluster": cluster_expected} if seq or found_cluster is not None else {},
        {} if found_cluster is None else {"cluster": found_cluster},
        seq,
    )
    drifts += _diff_rows(
        "migrations",
        {sid: {"migration_id": mid} for sid, mid in state.in_flight.items()},
        {sid: {"migration_id": mid} for sid, mid in rows.in_flight.items()},
        seq,
    )
    drifts += _diff_rows(
        "projection_tracking", {"last_seq": {"seq": seq}}, {"last_seq": {"seq": rows.last_seq}}, seq
    )
    checked = len(state.streams) + len(state.instances) + len(state.in_flight) + 2
    return DriftReport(Projection.READ_MODEL, seq, head_seq, lag, checked, tuple(drifts))


def missing_read_model(*, head_seq: int, lag: int) -> DriftReport:
    """The report when the read model's tables or tracking row do not exist at all."""
    drift = Drift(
        Projection.READ_MODEL,
        "projection_tracking",
        "tracking_row",
        {"present": True},
        None,
        (),
        0,
    )
    return DriftReport(Projection.READ_MODEL, 0, head_seq, lag, 1, (drift,))
