"""projections.prefetch's failure paths, without a broker: the child's Kafka error reaches
the parent as the same error class, and a child that dies is an error, not a hang."""

from __future__ import annotations

import asyncio

import pytest

from projections.errors import KafkaIOError, KafkaUnavailableError
from projections.prefetch import ChildSpec, prefetched


def _spec(bootstrap: str, timeout: float = 3.0) -> ChildSpec:
    return ChildSpec(
        bootstrap=bootstrap,
        topic="nowhere.events",
        partition=0,
        start=0,
        stop=10,
        consumer={"auto_offset_reset": "none", "request_timeout_ms": 2000},
        kafka_timeout=timeout,
        poll_timeout_ms=100,
        max_records=10,
    )


async def test_the_childs_kafka_error_is_raised_in_the_parent() -> None:
    async with prefetched(_spec("127.0.0.1:9")) as reader:  # nothing listens on port 9
        with pytest.raises(KafkaIOError) as caught:
            await reader.next(30)
    assert "replay reader" in str(caught.value)


async def test_a_child_that_dies_is_an_error_not_a_hang() -> None:
    async with prefetched(_spec("127.0.0.1:9", timeout=60)) as reader:
        reader._process.kill()
        with pytest.raises(KafkaUnavailableError, match="exited"):
            await asyncio.wait_for(reader.next(30), 40)
