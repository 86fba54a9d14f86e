"""Worker-side messages: heartbeats (reports of reality) and desired sets (orders)."""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress

from events.base import Message
from events.ids import Incarnation, ServerId, ShortText, StreamId, Tag

MAX_STREAMS_PER_MESSAGE = 20_000
MAX_CAPACITY = 1_000_000
MAX_TAGS = 32


class StreamRunState(StrEnum):
    """What a worker says one of its streams is doing."""

    STARTING = "starting"
    RUNNING = "running"
    FAILED = "failed"


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class StreamPerformance(_Value):
    """Per-stream figures reported by the handler (all optional)."""

    latency_ms: float | None = Field(default=None, ge=0)
    throughput: float | None = Field(default=None, ge=0)
    restarts: int = Field(default=0, ge=0)


class StreamReport(_Value):
    """One stream as the worker sees it."""

    stream_id: StreamId
    state: StreamRunState
    error: ShortText | None = None
    performance: StreamPerformance = StreamPerformance()


class PerformanceMetrics(_Value):
    """Process-level figures of an instance."""

    cpu_percent: float = Field(default=0.0, ge=0, le=100_000)
    memory_mb: float = Field(default=0.0, ge=0)
    avg_latency_ms: float | None = Field(default=None, ge=0)
    error_rate: float = Field(default=0.0, ge=0, le=1)


class Heartbeat(Message):
    """A worker's level-triggered report, sent every interval and on every change.

    v2 (current) reports each stream with its state; v1 listed running stream ids only
    (see :func:`events.upcasters.upcast_heartbeat_v1_v2`).
    """

    FAMILY: ClassVar[str] = "heartbeat"
    SUBJECT_FIELD: ClassVar[str | None] = "server_id"
    SCHEMA_VERSION: ClassVar[int] = 2
    type: Literal["Heartbeat"] = "Heartbeat"

    server_id: ServerId
    incarnation: Incarnation
    #: one validator (IPv4, else IPv6); a union ran both on every heartbeat
    ip: IPvAnyAddress
    port: int = Field(ge=1, le=65535)
    max_streams: int = Field(ge=0, le=MAX_CAPACITY)
    zone: Tag | None = None
    tags: tuple[Tag, ...] = Field(default=(), max_length=MAX_TAGS)
    sent_at: ShortText | None = None  # free-form clock of the sender, for skew diagnosis
    streams: tuple[StreamReport, ...] = Field(default=(), max_length=MAX_STREAMS_PER_MESSAGE)
    metrics: PerformanceMetrics = PerformanceMetrics()
    #: the set of streams the worker believes it should run differs from the desired set
    desired_mismatch: tuple[StreamId, ...] = Field(default=(), max_length=MAX_STREAMS_PER_MESSAGE)
    #: the worker is shutting down gracefully: move its streams now
    leaving: bool = False
    #: the control-log seq of the desired set the worker last applied (0: none yet)
    desired_seq: int = Field(default=0, ge=0)


class DesiredSet(Message):
    """What one incarnation must run, on the compacted ``streamplane.desired`` topic.

    Written in the orchestrator's transaction; ``seq`` is the control-log seq it is as of.
    ``fenced`` tells a failed incarnation to stop everything and register anew.
    """

    FAMILY: ClassVar[str] = "desired"
    SUBJECT_FIELD: ClassVar[str | None] = "server_id"
    type: Literal["DesiredSet"] = "DesiredSet"

    server_id: ServerId
    incarnation: Incarnation
    streams: tuple[StreamId, ...] = Field(default=(), max_length=MAX_STREAMS_PER_MESSAGE)
    params: dict[StreamId, dict[str, str]] = Field(default_factory=dict)
    fenced: bool = False
    seq: int = Field(ge=0)
    epoch: int = Field(ge=0)
