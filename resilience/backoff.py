"""Exponential back-off with full jitter, bounded, and a retry loop built on it.

``delay(attempt)`` is ``uniform(0, min(cap, base * 2**attempt))`` (AWS "full jitter"): the
spread keeps a fleet of workers that lost Kafka at the same moment from reconnecting in lock
step. The random source is injected so tests can pin it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import NamedTuple, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

# 2**62 already dwarfs any sane cap; clamping avoids float overflow for huge attempt counts.
_MAX_EXPONENT = 62


class Backoff(NamedTuple):
    """Back-off policy: ``base`` seconds doubling per attempt, never above ``cap``."""

    base: float
    cap: float

    def ceiling(self, attempt: int) -> float:
        """The largest delay attempt ``attempt`` (0-based) may wait."""
        exponent = min(max(attempt, 0), _MAX_EXPONENT)
        return min(self.cap, self.base * 2.0**exponent)

    def delay(self, attempt: int, rand: Callable[[], float]) -> float:
        """A full-jitter delay in ``[0, ceiling(attempt)]``; ``rand()`` returns ``[0, 1)``."""
        fraction = min(max(rand(), 0.0), 1.0)
        return fraction * self.ceiling(attempt)


def is_retriable(exc: BaseException) -> bool:
    """Errors say themselves whether a retry can help (aiokafka's errors do too)."""
    return bool(getattr(exc, "retriable", False)) or isinstance(exc, TimeoutError | OSError)


async def retry(
    operation: Callable[[], Awaitable[T]],
    *,
    backoff: Backoff,
    attempts: int,
    rand: Callable[[], float],
    what: str,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``operation`` up to ``attempts`` times, sleeping a jittered back-off between tries.

    Only retriable errors are retried; the last error is re-raised unchanged.
    """
    if attempts < 1:
        raise ValueError(f"attempts must be >= 1, got {attempts}")
    for attempt in range(attempts):
        try:
            return await operation()
        except Exception as exc:  # shell code: decide by the error's own `retriable`
            if attempt == attempts - 1 or not is_retriable(exc):
                raise
            pause = backoff.delay(attempt, rand)
            log.info("%s failed (%s); retry %d in %.2fs", what, exc, attempt + 1, pause)
            await sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover
