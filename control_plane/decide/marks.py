"""Cycle marks: what each leader cycle was handed, by reference, on ``<prefix>.cycles``.

Why: ``decide`` is a pure function of the state, the liveness, its inputs, ``now`` and the
config. The control log holds the state; the heartbeats and commands topics hold the inputs;
what they do not hold is the *cut*: which heartbeats (received when) and which commands each
cycle saw, its ``now``, the observer lag and whether the balance timer was due. A cycle mark
says exactly that, by position in those topics, so that ``streamplane simulate``
(:mod:`control_plane.tools.simulate`) can run the recorded run through ``decide`` again and
get the same events, or run it with other settings.

The leader writes one :class:`MarkRecord` per transaction (in the same transaction as the
cycle's events, so a mark exists exactly when its cycle committed): the marks of the idle
cycles since the last record, then its own. When nothing is committed for
``cycle_marks_flush`` seconds, the pending marks are written alone. The record of a term's
first transaction carries a :class:`TermMark`: what the liveness knew at the take-over.

Pure: plain values and their JSON form (orjson), no I/O.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import orjson

FORMAT_VERSION = 1
_US = timedelta(microseconds=1)


class Batch(NamedTuple):
    """One read of the heartbeats topic: when it was read (every heartbeat in it was
    observed at that instant) and, per partition in the order they were read, the offset
    after the last record read. The records are those from the partition's previous
    position up to ``next_offset``, except ``refused``: the (partition, offset) of those the
    leader did not count (undecodable, or refused by its heartbeat gate: unenrolled, revoked,
    a bad signature), which a replay cannot judge again without the leader's gate and
    enrollment settings."""

    received_at: datetime
    positions: tuple[tuple[int, int], ...]
    refused: tuple[tuple[int, int], ...] = ()


class CycleMark(NamedTuple):
    """One leader cycle, by reference (see the module docstring)."""

    n: int
    now: datetime
    observer_lag: timedelta
    check_balance: bool
    batches: tuple[Batch, ...] = ()
    #: commands consumed: offsets ``[first, next)`` of the commands partition (None: none)
    commands: tuple[int, int] | None = None
    #: the state's seq after the cycle (its events are the seqs after the previous one's)
    seq: int = 0
    #: the liveness's ``watch_started_at`` when the poll moved it (after a blind spot)
    watch_started_at: datetime | None = None


class Sighting(NamedTuple):
    """A server's latest heartbeat at the take-over, by position, and when it was heard."""

    server_id: str
    partition: int
    offset: int
    received_at: datetime


class TermMark(NamedTuple):
    """What a leader term starts from besides the log: the liveness at the take-over."""

    epoch: int
    #: seq of the term's ``LeaderElected``
    seq: int
    watch_started_at: datetime
    phi_window: int
    #: the decide settings of the leader, as ``DecideConfig.model_dump(mode="json")``
    config: dict[str, Any]
    sightings: tuple[Sighting, ...]
    #: per partition, the heartbeats consumer's position at the take-over
    positions: tuple[tuple[int, int], ...]
    #: per server, the inter-arrival window in microseconds (kept for the phi detector only)
    intervals: dict[str, tuple[int, ...]] = {}


class MarkRecord(NamedTuple):
    """One record of ``<prefix>.cycles``."""

    node: str
    epoch: int
    cycles: tuple[CycleMark, ...]
    term: TermMark | None = None


# --- JSON ---------------------------------------------------------------------------------


def _t(value: datetime) -> str:
    return value.isoformat()


def _batch_json(b: Batch) -> list[Any]:
    """``[at, positions]``, and ``refused`` third when there are any (older records never
    have one: nothing refused)."""
    doc: list[Any] = [_t(b.received_at), [list(p) for p in b.positions]]
    if b.refused:
        doc.append([list(p) for p in b.refused])
    return doc


def _batch(doc: Sequence[Any]) -> Batch:
    at, positions, *rest = doc
    return Batch(_dt(at), _pairs(positions), _pairs(rest[0]) if rest else ())


def _cycle_json(c: CycleMark) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "n": c.n,
        "now": _t(c.now),
        "lag_us": c.observer_lag // _US,
        "balance": c.check_balance,
        "seq": c.seq,
    }
    if c.batches:
        doc["hb"] = [_batch_json(b) for b in c.batches]
    if c.commands is not None:
        doc["cmd"] = list(c.commands)
    if c.watch_started_at is not None:
        doc["watch"] = _t(c.watch_started_at)
    return doc


def _term_json(t: TermMark) -> dict[str, Any]:
    return {
        "epoch": t.epoch,
        "seq": t.seq,
        "watch": _t(t.watch_started_at),
        "phi_window": t.phi_window,
        "config": t.config,
        "sightings": [[s.server_id, s.partition, s.offset, _t(s.received_at)] for s in t.sightings],
        "positions": [list(p) for p in t.positions],
        "intervals": {k: list(v) for k, v in t.intervals.items()},
    }


def encode_marks(record: MarkRecord) -> bytes:
    """The record's bytes on ``<prefix>.cycles``."""
    doc: dict[str, Any] = {
        "v": FORMAT_VERSION,
        "node": record.node,
        "epoch": record.epoch,
        "cycles": [_cycle_json(c) for c in record.cycles],
    }
    if record.term is not None:
        doc["term"] = _term_json(record.term)
    return orjson.dumps(doc)


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _pairs(rows: Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    return tuple((int(a), int(b)) for a, b in rows)


def _cycle(doc: dict[str, Any]) -> CycleMark:
    cmd = doc.get("cmd")
    watch = doc.get("watch")
    return CycleMark(
        n=int(doc["n"]),
        now=_dt(doc["now"]),
        observer_lag=timedelta(microseconds=int(doc["lag_us"])),
        check_balance=bool(doc["balance"]),
        batches=tuple(_batch(b) for b in doc.get("hb", ())),
        commands=None if cmd is None else (int(cmd[0]), int(cmd[1])),
        seq=int(doc["seq"]),
        watch_started_at=None if watch is None else _dt(watch),
    )


def _term(doc: dict[str, Any]) -> TermMark:
    return TermMark(
        epoch=int(doc["epoch"]),
        seq=int(doc["seq"]),
        watch_started_at=_dt(doc["watch"]),
        phi_window=int(doc["phi_window"]),
        config=dict(doc["config"]),
        sightings=tuple(
            Sighting(str(s), int(p), int(o), _dt(at)) for s, p, o, at in doc["sightings"]
        ),
        positions=_pairs(doc["positions"]),
        intervals={k: tuple(int(x) for x in v) for k, v in doc.get("intervals", {}).items()},
    )


class MarkFormatError(ValueError):
    """A record of ``<prefix>.cycles`` this build cannot read (not retriable)."""

    retriable = False


def decode_marks(raw: bytes) -> MarkRecord:
    """A record of ``<prefix>.cycles``; :class:`MarkFormatError` when it is not one."""
    try:
        doc = orjson.loads(raw)
        if doc.get("v") != FORMAT_VERSION:
            raise MarkFormatError(f"unsupported cycle-mark format {doc.get('v')!r}")
        term = doc.get("term")
        return MarkRecord(
            node=str(doc["node"]),
            epoch=int(doc["epoch"]),
            cycles=tuple(_cycle(c) for c in doc["cycles"]),
            term=None if term is None else _term(term),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        if isinstance(exc, MarkFormatError):
            raise
        raise MarkFormatError(f"not a cycle-mark record: {exc}") from exc


__all__ = [
    "FORMAT_VERSION",
    "Batch",
    "CycleMark",
    "MarkFormatError",
    "MarkRecord",
    "Sighting",
    "TermMark",
    "decode_marks",
    "encode_marks",
]
