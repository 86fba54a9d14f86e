"""The streams the demo and the benchmarks register, and how the commands are sent.

Kept apart from the demo so that a benchmark registers its streams the same way without
importing the demo's live view.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from events import commands as cmd
from events.codec import encode
from kafka_auth import Brokers
from projections.io.kafka import make_producer, started


def stream_specs(count: int) -> list[dict[str, Any]]:
    """``count`` streams with weights and priorities varied a little (every 5th weighs 2)."""
    width = len(str(count))
    return [
        {"stream_id": f"stream-{i + 1:0{width}d}", "weight": 2 if i % 5 == 4 else 1,
         "priority": i % 3}
        for i in range(count)
    ]  # fmt: skip


def capacity_for(specs: Sequence[dict[str, Any]], workers: int) -> int:
    """Room for every stream even after one worker is lost, plus one."""
    total = sum(int(s["weight"]) for s in specs)
    return math.ceil(total / max(1, workers - 1)) + 1


def registrations(specs: Sequence[dict[str, Any]], source: str) -> Iterator[cmd.RegisterStream]:
    """One ``RegisterStream`` per spec (fresh ids, the time now), as a client sends it."""
    for spec in specs:
        yield cmd.RegisterStream(
            id=uuid.uuid4().hex,
            source=source,
            time=datetime.now(UTC),
            command_id=uuid.uuid4().hex,
            **spec,
        )


async def send_commands(
    bootstrap: Brokers, topic: str, commands: Sequence[Any], *, kafka_timeout: float = 30.0
) -> None:
    """Produce ``commands`` (keyed by command_id) and wait for every acknowledgement."""
    async with started(make_producer(bootstrap), what="command sender") as producer:
        async with asyncio.timeout(kafka_timeout):
            futures = [
                await producer.send(topic, encode(c), key=c.command_id.encode()) for c in commands
            ]
            await asyncio.gather(*futures)
