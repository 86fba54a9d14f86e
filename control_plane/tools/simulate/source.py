"""Loading what a replay needs from Kafka: the control log, the cycle marks, and the
heartbeats and commands they cite (through :mod:`projections.io`; read-only)."""

from __future__ import annotations

import logging
from contextlib import aclosing
from datetime import datetime

from control_plane.decide.marks import MarkFormatError, MarkRecord, decode_marks
from control_plane.tools.simulate.replay import Recorded, terms
from events import Command, EventError, decode_command, decode_heartbeat
from events.base import ControlEvent
from events.heartbeat import Heartbeat
from events.topics import COMMANDS, CYCLES, HEARTBEATS, Topics
from kafka_auth import Brokers
from projections.io.history import read_events
from projections.io.records import read_positions

log = logging.getLogger("streamplane.simulate")


def _heartbeat(raw: bytes | None) -> Heartbeat | None:
    try:
        return None if raw is None else decode_heartbeat(raw)
    except EventError:
        return None  # the leader dead-lettered it and went on: so does the replay


def _command(raw: bytes | None) -> Command | None:
    try:
        return None if raw is None else decode_command(raw)
    except EventError:
        return None


def _starts(
    marks: list[MarkRecord], since: datetime
) -> tuple[dict[int, int], dict[int, int]] | None:
    """Where the replay of a window from ``since`` starts reading the heartbeats and the
    commands: the terms it replays (their positions and the heartbeats they cite). None: no
    term reaches ``since`` (read everything; the replay will say what is missing)."""
    replayed = [term for term in terms(marks) if term.cycles and term.cycles[-1].now >= since]
    if not replayed:
        return None
    hb: dict[int, int] = {}
    for term in replayed:  # a later term's sightings may cite older heartbeats
        cited = [*term.mark.positions, *((s.partition, s.offset) for s in term.mark.sightings)]
        for partition, offset in cited:
            hb[partition] = min(hb.get(partition, offset), offset)
    firsts = [c.commands[0] for t in replayed for c in t.cycles if c.commands is not None]
    return hb, {0: min(firsts, default=1 << 62)}


async def _marks(bootstrap: Brokers, topics: Topics) -> list[MarkRecord]:
    raw = await read_positions(bootstrap, topics.cycles, partitions=CYCLES.partitions)
    marks: list[MarkRecord] = []
    for (_, offset), value in sorted(raw.items()):
        try:
            marks.append(decode_marks(value or b""))
        except MarkFormatError as exc:
            log.warning("cycle mark at offset %d skipped: %s", offset, exc)
    return marks


async def load(bootstrap: Brokers, topics: Topics, *, since: datetime | None = None) -> Recorded:
    """What a replay from ``since`` needs (None: everything the topics still hold; the
    heartbeats' retention bounds the window)."""
    events: list[ControlEvent] = []
    reader = read_events(bootstrap, topics.events)
    async with aclosing(reader):
        async for batch in reader:
            events.extend(batch)
    marks = await _marks(bootstrap, topics)
    starts = _starts(marks, since) if since is not None else None
    hb_from, cmd_from = starts if starts is not None else (None, None)
    hb_raw = await read_positions(
        bootstrap, topics.heartbeats, partitions=HEARTBEATS.partitions, start=hb_from
    )
    heartbeats = {k: _heartbeat(v) for k, v in hb_raw.items()}
    cmd_raw = await read_positions(
        bootstrap, topics.commands, partitions=COMMANDS.partitions, start=cmd_from
    )
    commands = {offset: _command(v) for (_, offset), v in cmd_raw.items()}
    return Recorded(events, marks, heartbeats, commands)


__all__ = ["load"]
