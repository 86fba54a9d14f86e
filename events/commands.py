"""Commands: operators' requests on ``streamplane.commands``, named in the imperative.

Each carries a ``command_id``; the orchestrator carries a command out once, however often
it is sent, and answers with events whose ``causationid`` is that id, ending with
``CommandCompleted`` or ``CommandRejected``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from events.base import Command
from events.control import MAX_WEIGHT
from events.enrollment import EnrollInstance as EnrollInstance
from events.enrollment import RevokeInstance as RevokeInstance
from events.heartbeat import MAX_CAPACITY
from events.ids import Reason, ServerId, ShortText, StreamId, Tag

#: divergences one ``RunConsistencyCheck`` may carry (a command stays far below Kafka's 1 MB)
MAX_REPORTED_DIVERGENCES = 2000


class RegisterStream(Command):
    SUBJECT_FIELD: ClassVar[str | None] = "stream_id"
    type: Literal["RegisterStream"] = "RegisterStream"
    stream_id: StreamId
    weight: int = Field(default=1, ge=1, le=MAX_WEIGHT)
    priority: int = Field(default=0, ge=-1000, le=1000)
    zone: Tag | None = None
    anti_affinity: Tag | None = None
    params: dict[str, str] = Field(default_factory=dict, max_length=64)


class DeregisterStream(Command):
    SUBJECT_FIELD: ClassVar[str | None] = "stream_id"
    type: Literal["DeregisterStream"] = "DeregisterStream"
    stream_id: StreamId


class DrainInstance(Command):
    SUBJECT_FIELD: ClassVar[str | None] = "server_id"
    type: Literal["DrainInstance"] = "DrainInstance"
    server_id: ServerId


class UndrainInstance(Command):
    SUBJECT_FIELD: ClassVar[str | None] = "server_id"
    type: Literal["UndrainInstance"] = "UndrainInstance"
    server_id: ServerId


class SetCapacity(Command):
    SUBJECT_FIELD: ClassVar[str | None] = "server_id"
    type: Literal["SetCapacity"] = "SetCapacity"
    server_id: ServerId
    max_streams: int = Field(ge=0, le=MAX_CAPACITY)


class RequestRebalance(Command):
    type: Literal["RequestRebalance"] = "RequestRebalance"
    dry_run: bool = True


class ReportedDivergence(BaseModel):
    """One divergence ``streamplane check`` found (docs/consistency.md): the orchestrator
    checks it again against its own state and observations before it repairs it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Reason
    #: where it was seen: read_model, assignments, desired, heartbeats, log, state
    view: Reason
    stream_id: StreamId | None = None
    server_id: ServerId | None = None
    #: the row, record or event concerned (a log finding: the refused event's id)
    key: str | None = Field(default=None, max_length=256)
    detail: str = Field(default="", max_length=512)
    #: what the checker already did about it itself (a projection rebuilt from the log)
    action: ShortText = ""


class RunConsistencyCheck(Command):
    """Without ``divergences``: the orchestrator checks its own state and the heartbeats
    (``verify_system_consistency``). With them: it repairs those ``streamplane check``
    found, each as events with ``reason=consistency_repair`` (ConsistencyErrorHandler)."""

    type: Literal["RunConsistencyCheck"] = "RunConsistencyCheck"
    repair: bool = False
    divergences: tuple[ReportedDivergence, ...] = Field(
        default=(), max_length=MAX_REPORTED_DIVERGENCES
    )


class EmergencyRecovery(Command):
    type: Literal["EmergencyRecovery"] = "EmergencyRecovery"


COMMAND_TYPES: tuple[type[Command], ...] = (
    RegisterStream,
    DeregisterStream,
    DrainInstance,
    UndrainInstance,
    SetCapacity,
    RequestRebalance,
    RunConsistencyCheck,
    EmergencyRecovery,
    EnrollInstance,
    RevokeInstance,
)

AnyCommand = Annotated[
    RegisterStream
    | DeregisterStream
    | DrainInstance
    | UndrainInstance
    | SetCapacity
    | RequestRebalance
    | RunConsistencyCheck
    | EmergencyRecovery
    | EnrollInstance
    | RevokeInstance,
    Field(discriminator="type"),
]
