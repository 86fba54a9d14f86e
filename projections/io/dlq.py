"""Dead letters: a record that cannot be decoded goes to ``<prefix>.dlq`` with its origin and
the error, and the pipeline goes on (DESIGN invariant 7: nothing is dropped silently).

Wire form (one JSON object per DLQ record, keyed by the origin topic)::

    {"origin_topic": "streamplane.events", "origin_partition": 0, "origin_offset": 1234,
     "origin_timestamp_ms": 1764360000000, "key": null, "key_encoding": null,
     "error_type": "UnknownTypeError", "error_message": "unknown message type 'Foo'",
     "error_field": "type", "message_type": "Foo",
     "value": "{\\"type\\": \\"Foo\\", ...}", "value_encoding": "utf-8",
     "value_size": 87, "value_truncated": false, "dead_lettered_at": "2026-..."}

``value`` is the original bytes as text when they are valid UTF-8, else base64 (so nothing
is lost); very large values are cut at :data:`MAX_VALUE_BYTES` (``value_truncated``).
:func:`make_dead_letter` is pure; :class:`DeadLetterWriter` is the thin async shell.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
from collections import deque
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Literal, Protocol

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka import errors as kafka_errors
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from events.base import UtcDateTime
from events.errors import EventError
from kafka_auth import Brokers
from projections.errors import DeadLetterError
from projections.io.kafka import DEFAULT_TIMEOUT, kafka_error, make_producer, started

#: raw bytes kept per dead letter: the DLQ record must stay below Kafka's 1 MiB default
#: even after base64 (x4/3) and the JSON around it
MAX_VALUE_BYTES = 512 * 1024
#: dead letters sent but not yet acknowledged before ``write`` waits (back-pressure)
DEFAULT_MAX_PENDING = 1000

Encoding = Literal["utf-8", "base64"]


class DeadLetter(BaseModel):
    """One undecodable record: where it came from, why it failed, and its bytes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin_topic: str = Field(min_length=1)
    origin_partition: int = Field(ge=0)
    origin_offset: int = Field(ge=0)
    origin_timestamp_ms: int | None = None
    key: str | None = None
    key_encoding: Encoding | None = None
    error_type: str
    error_message: str
    error_field: str | None = None
    #: the ``type`` the record claimed, when the codec got that far
    message_type: str | None = None
    value: str | None
    value_encoding: Encoding | None
    value_size: int = Field(ge=0)
    value_truncated: bool = False
    dead_lettered_at: UtcDateTime

    def raw_value(self) -> bytes | None:
        """The original bytes (or their first :data:`MAX_VALUE_BYTES` if truncated)."""
        return _decode_bytes(self.value, self.value_encoding)

    def raw_key(self) -> bytes | None:
        return _decode_bytes(self.key, self.key_encoding)


def _encode_bytes(raw: bytes | None) -> tuple[str | None, Encoding | None]:
    if raw is None:
        return None, None
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def _decode_bytes(text: str | None, encoding: Encoding | None) -> bytes | None:
    if text is None:
        return None
    return base64.b64decode(text, validate=True) if encoding == "base64" else text.encode("utf-8")


def make_dead_letter(
    *,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    error: BaseException,
    now: datetime,
    timestamp_ms: int | None = None,
) -> DeadLetter:
    """The dead letter for one record that failed with ``error`` (pure: ``now`` is given).

    An :class:`events.EventError` contributes its field and message type; any other error
    its class name and message.
    """
    size = 0 if value is None else len(value)
    truncated = size > MAX_VALUE_BYTES
    kept = value[:MAX_VALUE_BYTES] if value is not None and truncated else value
    value_text, value_encoding = _encode_bytes(kept)
    key_text, key_encoding = _encode_bytes(key)
    event_error = error if isinstance(error, EventError) else None
    return DeadLetter(
        origin_topic=topic,
        origin_partition=partition,
        origin_offset=offset,
        origin_timestamp_ms=timestamp_ms,
        key=key_text,
        key_encoding=key_encoding,
        error_type=type(error).__name__,
        error_message=str(error),
        error_field=event_error.field if event_error else None,
        message_type=event_error.type if event_error else None,
        value=value_text,
        value_encoding=value_encoding,
        value_size=size,
        value_truncated=truncated,
        dead_lettered_at=now,
    )


def encode_dead_letter(letter: DeadLetter) -> bytes:
    """JSON bytes of a dead letter (the DLQ record value)."""
    return orjson.dumps(letter.model_dump(mode="json"))


def decode_dead_letter(raw: bytes | str) -> DeadLetter:
    """Parse a DLQ record value; raises ``ValueError`` on anything that is not one."""
    try:
        letter = DeadLetter.model_validate_json(raw)
        letter.raw_value()  # a corrupt base64 payload is not a dead letter either
    except (ValidationError, binascii.Error) as exc:
        raise ValueError(f"not a dead letter: {exc}") from exc
    return letter


class DeadLetterSink(Protocol):
    """Where replay and projectors put records they cannot decode."""

    async def write(self, letter: DeadLetter) -> None: ...

    async def flush(self) -> None: ...


class DeadLetterWriter:
    """Writes dead letters to a DLQ topic with an idempotent acks=all producer.

    ``write`` returns once the letter is queued; at most ``max_pending`` letters are in
    flight (then it waits for the oldest ack: back-pressure, bounded memory). ``flush``
    waits for every ack; a failed delivery raises :class:`DeadLetterError` there or on a
    later ``write``. Use as ``async with DeadLetterWriter(bootstrap, Topics(p).dlq) as dlq``.
    """

    def __init__(
        self,
        bootstrap: Brokers,
        topic: str,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        kafka_timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.topic = topic
        self.written = 0
        self._bootstrap = bootstrap
        self._max_pending = max_pending
        self._timeout = kafka_timeout
        self._pending: deque[asyncio.Future[object]] = deque()
        self._producer: AIOKafkaProducer | None = None
        self._cm: AbstractAsyncContextManager[AIOKafkaProducer] | None = None

    async def __aenter__(self) -> DeadLetterWriter:
        producer = make_producer(self._bootstrap, linger_ms=0)
        self._cm = started(
            producer, kafka_timeout=self._timeout, what=f"DLQ producer for {self.topic}"
        )
        self._producer = await self._cm.__aenter__()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if exc_info[0] is None:
                await self.flush()
        finally:
            self._producer = None
            if self._cm is not None:
                await self._cm.__aexit__(None, None, None)
                self._cm = None

    async def write(self, letter: DeadLetter) -> None:
        """Queue one dead letter (keyed by its origin topic)."""
        if self._producer is None:
            raise DeadLetterError("DeadLetterWriter used outside 'async with'")
        while len(self._pending) >= self._max_pending:
            await self._settle(self._pending.popleft())
        try:
            async with asyncio.timeout(self._timeout):
                future = await self._producer.send(
                    self.topic,
                    encode_dead_letter(letter),
                    key=letter.origin_topic.encode("utf-8"),
                )
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise DeadLetterError(
                f"dead letter to {self.topic}: {kafka_error(exc, 'send')}"
            ) from exc
        self._pending.append(future)

    async def flush(self) -> None:
        """Wait until every queued dead letter is acknowledged by the broker."""
        while self._pending:
            await self._settle(self._pending.popleft())

    async def _settle(self, future: asyncio.Future[object]) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                await future
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise DeadLetterError(
                f"dead letter to {self.topic} not acknowledged: {kafka_error(exc, 'deliver')}"
            ) from exc
        self.written += 1
