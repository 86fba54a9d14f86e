"""Control events: the facts on ``streamplane.events``, the one source of truth.

Named in the past tense. Every decision event carries a machine-readable ``reason``
(see :class:`~events.reasons.Reasons`) and, where a command caused it, ``causationid`` = the
command id. What each type does to the state a reader folds is docs/contract.md.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, IPvAnyAddress

from events.base import ControlEvent, UtcDateTime
from events.enrollment import InstanceEnrolled as InstanceEnrolled
from events.enrollment import InstanceRevoked as InstanceRevoked
from events.heartbeat import MAX_CAPACITY, MAX_TAGS, PerformanceMetrics
from events.ids import EventId, Incarnation, Reason, ServerId, ShortText, StreamId, Tag
from events.reasons import Reasons as Reasons  # re-exported: ev.Reasons.X

MAX_WEIGHT = 10_000
MAX_PLAN_MOVES = 200_000


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


# --- leadership -------------------------------------------------------------------------


class LeaderElected(ControlEvent):
    """Opens a leader term; events of an older epoch have no effect after it."""

    type: Literal["LeaderElected"] = "LeaderElected"
    leader_id: ServerId


# --- instances --------------------------------------------------------------------------


class _InstanceEvent(ControlEvent):
    SUBJECT_FIELD: ClassVar[str | None] = "server_id"
    server_id: ServerId


class InstanceRegistered(_InstanceEvent):
    """First heartbeat of a new incarnation."""

    type: Literal["InstanceRegistered"] = "InstanceRegistered"
    incarnation: Incarnation
    #: one validator (IPv4, else IPv6); a union ran both on every heartbeat
    ip: IPvAnyAddress
    port: int = Field(ge=1, le=65535)
    max_streams: int = Field(ge=0, le=MAX_CAPACITY)
    zone: Tag | None = None
    tags: tuple[Tag, ...] = Field(default=(), max_length=MAX_TAGS)


class InstanceSuspected(_InstanceEvent):
    """Silent for ``suspect_after``."""

    type: Literal["InstanceSuspected"] = "InstanceSuspected"
    incarnation: Incarnation
    last_heartbeat: UtcDateTime | None = None


class InstanceRecovered(_InstanceEvent):
    """A suspected incarnation was heard again before ``fail_after``."""

    type: Literal["InstanceRecovered"] = "InstanceRecovered"
    incarnation: Incarnation


class InstanceFailed(_InstanceEvent):
    """The incarnation is dead and fenced; its streams are reassigned by later events."""

    type: Literal["InstanceFailed"] = "InstanceFailed"
    incarnation: Incarnation
    reason: Reason = "instance_failed"


class InstanceQuarantined(_InstanceEvent):
    """Failed too often: receives no streams until ``until``."""

    type: Literal["InstanceQuarantined"] = "InstanceQuarantined"
    until: UtcDateTime
    reason: Reason = "flapping"


class InstanceDraining(_InstanceEvent):
    """Receives no new streams and is emptied gradually."""

    type: Literal["InstanceDraining"] = "InstanceDraining"
    reason: Reason = "operator"


class InstanceUndrained(_InstanceEvent):
    """Drain cancelled: the instance receives streams again."""

    type: Literal["InstanceUndrained"] = "InstanceUndrained"
    reason: Reason = "operator"


class InstanceDrained(_InstanceEvent):
    """A draining instance holds no stream any more."""

    type: Literal["InstanceDrained"] = "InstanceDrained"


class InstanceDeregistered(_InstanceEvent):
    """The incarnation left (graceful shutdown or operator); its streams move at once."""

    type: Literal["InstanceDeregistered"] = "InstanceDeregistered"
    incarnation: Incarnation
    reason: Reason = "instance_left"


class InstanceCapacityChanged(_InstanceEvent):
    type: Literal["InstanceCapacityChanged"] = "InstanceCapacityChanged"
    max_streams: int = Field(ge=0, le=MAX_CAPACITY)
    reason: Reason = "operator"


class PerformanceSampled(_InstanceEvent):
    """Performance history the balancer used; recorded so decisions replay exactly."""

    type: Literal["PerformanceSampled"] = "PerformanceSampled"
    metrics: PerformanceMetrics


# --- streams ----------------------------------------------------------------------------


class _StreamEvent(ControlEvent):
    SUBJECT_FIELD: ClassVar[str | None] = "stream_id"
    stream_id: StreamId


class StreamRegistered(_StreamEvent):
    type: Literal["StreamRegistered"] = "StreamRegistered"
    weight: int = Field(default=1, ge=1, le=MAX_WEIGHT)
    priority: int = Field(default=0, ge=-1000, le=1000)
    zone: Tag | None = None
    anti_affinity: Tag | None = None
    params: dict[str, str] = Field(default_factory=dict, max_length=64)


class StreamDeregistered(_StreamEvent):
    type: Literal["StreamDeregistered"] = "StreamDeregistered"
    reason: Reason = "operator"


class StreamAssigned(_StreamEvent):
    """``server_id`` becomes the stream's owner (and must start it)."""

    type: Literal["StreamAssigned"] = "StreamAssigned"
    server_id: ServerId
    incarnation: Incarnation
    reason: Reason


class StreamUnassigned(_StreamEvent):
    """The stream has no owner (no capacity, or its owner was lost); it waits."""

    type: Literal["StreamUnassigned"] = "StreamUnassigned"
    server_id: ServerId | None = None
    reason: Reason


class StreamStarted(_StreamEvent):
    """The owner's heartbeat reported the stream running."""

    type: Literal["StreamStarted"] = "StreamStarted"
    server_id: ServerId
    incarnation: Incarnation


class StreamFailed(_StreamEvent):
    """A start failed on ``server_id``; ``parked`` means poison: no more attempts."""

    type: Literal["StreamFailed"] = "StreamFailed"
    server_id: ServerId
    error: ShortText | None = None
    parked: bool = False
    reason: Reason = "start_failed"


class StreamWaiting(_StreamEvent):
    """No instance may take the stream now: it waits ``unassigned`` until a ``StreamAssigned``
    (written once, in the cycle it began to wait)."""

    type: Literal["StreamWaiting"] = "StreamWaiting"
    reason: Reason = "no_capacity"


# --- migrations -------------------------------------------------------------------------


class MigrationStarted(_StreamEvent):
    """Make-before-break: ``to_server`` starts the stream, ``from_server`` keeps owning it."""

    type: Literal["MigrationStarted"] = "MigrationStarted"
    migration_id: EventId
    from_server: ServerId
    to_server: ServerId
    to_incarnation: Incarnation
    deadline: UtcDateTime
    reason: Reason
    plan_id: EventId | None = None


class MigrationCompleted(_StreamEvent):
    """The target runs the stream: it becomes the owner and the source lets go."""

    type: Literal["MigrationCompleted"] = "MigrationCompleted"
    migration_id: EventId


class MigrationAborted(_StreamEvent):
    """The migration is off; the source (if alive) stays the owner."""

    type: Literal["MigrationAborted"] = "MigrationAborted"
    migration_id: EventId
    reason: Reason


# --- rebalancing ------------------------------------------------------------------------


class PlannedMove(_Value):
    stream_id: StreamId
    from_server: ServerId
    to_server: ServerId
    reason: Reason = "rebalance"
    gain: float = 0.0


class RebalancePlanned(ControlEvent):
    """The whole plan the balancer proposed, also for a dry run."""

    type: Literal["RebalancePlanned"] = "RebalancePlanned"
    plan_id: EventId
    dry_run: bool
    moves: tuple[PlannedMove, ...] = Field(default=(), max_length=MAX_PLAN_MOVES)
    lower_bound: int = Field(default=0, ge=0)
    score_before: float = 0.0
    score_after: float = 0.0
    reason: Reason = "rebalance"


class RebalanceCompleted(ControlEvent):
    """The plan is over: its migrations ``completed`` or ``aborted``, and the moves never
    started because they went stale (``skipped``; v1 did not count them)."""

    SCHEMA_VERSION: ClassVar[int] = 2
    type: Literal["RebalanceCompleted"] = "RebalanceCompleted"
    plan_id: EventId
    completed: int = Field(ge=0)
    aborted: int = Field(ge=0)
    skipped: int = Field(default=0, ge=0)


# --- consistency, commands, maintenance --------------------------------------------------


class ConsistencyDivergenceFound(ControlEvent):
    type: Literal["ConsistencyDivergenceFound"] = "ConsistencyDivergenceFound"
    check_id: EventId
    kind: Reason  # orphaned, duplicated, counter_mismatch, projection_drift, worker_mismatch
    stream_id: StreamId | None = None
    server_id: ServerId | None = None
    detail: ShortText = ""


#: the ``action`` of a ``ConsistencyDivergenceRepaired`` that asks the Faust projector to
#: write its ``stream_id`` again into its tables from its fold of the log (the repair of a
#: drifted table entry: the projector owns its tables, so the log tells it; docs/consistency.md)
PROJECTOR_REWRITE = "the projector writes the key again into its tables from the log"


class ConsistencyDivergenceRepaired(ControlEvent):
    type: Literal["ConsistencyDivergenceRepaired"] = "ConsistencyDivergenceRepaired"
    check_id: EventId
    kind: Reason
    action: ShortText
    stream_id: StreamId | None = None
    server_id: ServerId | None = None


class CommandRejected(ControlEvent):
    """A command that could not be carried out, with why (``causationid`` = its id)."""

    type: Literal["CommandRejected"] = "CommandRejected"
    command_id: EventId
    command_type: str = Field(max_length=64)
    reason: Reason
    detail: ShortText = ""


class CommandCompleted(ControlEvent):
    """A command was carried out (its effects are the events just before, same causation)."""

    type: Literal["CommandCompleted"] = "CommandCompleted"
    command_id: EventId
    command_type: str = Field(max_length=64)
    detail: ShortText = ""


class MaintenanceModeEntered(ControlEvent):
    """Failovers frozen: the observer itself may be blind (mass silence, own lag)."""

    type: Literal["MaintenanceModeEntered"] = "MaintenanceModeEntered"
    reason: Reason
    detail: ShortText = ""


class MaintenanceModeLeft(ControlEvent):
    type: Literal["MaintenanceModeLeft"] = "MaintenanceModeLeft"
    reason: Reason


CONTROL_EVENT_TYPES: tuple[type[ControlEvent], ...] = (
    LeaderElected,
    InstanceRegistered,
    InstanceSuspected,
    InstanceRecovered,
    InstanceFailed,
    InstanceQuarantined,
    InstanceDraining,
    InstanceUndrained,
    InstanceDrained,
    InstanceDeregistered,
    InstanceCapacityChanged,
    PerformanceSampled,
    StreamRegistered,
    StreamDeregistered,
    StreamAssigned,
    StreamUnassigned,
    StreamStarted,
    StreamFailed,
    StreamWaiting,
    MigrationStarted,
    MigrationCompleted,
    MigrationAborted,
    RebalancePlanned,
    RebalanceCompleted,
    ConsistencyDivergenceFound,
    ConsistencyDivergenceRepaired,
    CommandRejected,
    CommandCompleted,
    MaintenanceModeEntered,
    MaintenanceModeLeft,
    InstanceEnrolled,
    InstanceRevoked,
)

AnyControlEvent = Annotated[
    LeaderElected
    | InstanceRegistered
    | InstanceSuspected
    | InstanceRecovered
    | InstanceFailed
    | InstanceQuarantined
    | InstanceDraining
    | InstanceUndrained
    | InstanceDrained
    | InstanceDeregistered
    | InstanceCapacityChanged
    | PerformanceSampled
    | StreamRegistered
    | StreamDeregistered
    | StreamAssigned
    | StreamUnassigned
    | StreamStarted
    | StreamFailed
    | StreamWaiting
    | MigrationStarted
    | MigrationCompleted
    | MigrationAborted
    | RebalancePlanned
    | RebalanceCompleted
    | ConsistencyDivergenceFound
    | ConsistencyDivergenceRepaired
    | CommandRejected
    | CommandCompleted
    | MaintenanceModeEntered
    | MaintenanceModeLeft
    | InstanceEnrolled
    | InstanceRevoked,
    Field(discriminator="type"),
]

__all__ = [t.__name__ for t in CONTROL_EVENT_TYPES] + [
    "CONTROL_EVENT_TYPES",
    "AnyControlEvent",
    "PlannedMove",
    "Reasons",
]
