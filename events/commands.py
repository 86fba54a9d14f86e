"""Commands: operators' requests on ``streamplane.commands``, named in the imperative.

Each carries a ``command_id``; the orchestrator carries a command out once, however often
it is sent, and answers with events whose ``causationid`` is that id, ending with
``CommandCompleted`` or ``CommandRejected``.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field

from events.base import Command
from events.control import MAX_WEIGHT
from events.enrollment import EnrollInstance as EnrollInstance
from events.enrollment import RevokeInstance as RevokeInstance
from events.heartbeat import MAX_CAPACITY
from events.ids import ServerId, StreamId, Tag


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


class RunConsistencyCheck(Command):
    type: Literal["RunConsistencyCheck"] = "RunConsistencyCheck"
    repair: bool = False


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
