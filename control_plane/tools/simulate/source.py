"""Loading what a replay needs from Kafka: the control log, the cycle marks, and the
heartbeats and commands they cite (through :mod:`projections.io`; read-only)."""

from __future__ import annotations

import logging
from contextlib import aclosing

from control_plane.decide.marks import MarkFormatError, MarkRecord, decode_marks
from control_plane.tools.simulate.replay import Recorded
from events import Command, EventError, decode_command, decode_heartbeat
from events.base import ControlEvent
from events.heartbeat import Heartbeat
from events.topics import COMMANDS, CYCLES, HEARTBEATS, Topics
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


async def load(bootstrap: str, topics: Topics) -> Recorded:
    """Everything the topics still hold (the heartbeats' retention bounds the window)."""
    events: list[ControlEvent] = []
    reader = read_events(bootstrap, topics.events)
    async with aclosing(reader):
        async for batch in reader:
            events.extend(batch)
    marks: list[MarkRecord] = []
    for (_, offset), raw in sorted(
        (await read_positions(bootstrap, topics.cycles, partitions=CYCLES.partitions)).items()
    ):
        try:
            marks.append(decode_marks(raw or b""))
        except MarkFormatError as exc:
            log.warning("cycle mark at offset %d skipped: %s", offset, exc)
    heartbeats = {
        k: _heartbeat(v)
        for k, v in (
            await read_positions(bootstrap, topics.heartbeats, partitions=HEARTBEATS.partitions)
        ).items()
    }
    commands = {
        offset: _command(v)
        for (_, offset), v in (
            await read_positions(bootstrap, topics.commands, partitions=COMMANDS.partitions)
        ).items()
    }
    return Recorded(events, marks, heartbeats, commands)


__all__ = ["load"]
