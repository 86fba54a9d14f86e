"""The API's request bodies and responses as pydantic models: the OpenAPI document is
generated from them, and FastAPI checks every response against them before it leaves.

Views of the read model's JSON columns (an instance, a stream) name every field the fold
has today and allow more (``extra="allow"``): a field the fold gains later shows up in
the answer before this file learns its name, instead of failing the response.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from events.control import MAX_WEIGHT
from events.heartbeat import MAX_CAPACITY
from events.ids import StreamId, Tag
from projections.fold.state import AssignmentStatus, HealthStatus, InstanceStatus


class _View(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Seq(BaseModel):
    """Every read says the control-log ``seq`` it is as of (also the X-Streamplane-Seq header)."""

    as_of_seq: int = Field(ge=0, description="the control-log seq this answer reflects")


# --- health, instances --------------------------------------------------------------------


class HealthView(_View):
    """The seed's SystemHealth."""

    total_instances: int
    active_instances: int
    total_streams: int
    assigned_streams: int
    running_streams: int
    unassigned_streams: int
    parked_streams: int
    load_balance_score: float
    consistency_score: float
    performance_score: float
    maintenance: bool
    overall: HealthStatus
    needs_intervention: bool


class HealthResponse(Seq):
    health: HealthView
    epoch: int = 0
    leader_id: str | None = None
    maintenance: bool = False
    finding_count: int = 0
    last_event_time: datetime | None = None


class MetricsView(_View):
    cpu_percent: float = 0.0
    memory_mb: float = 0.0
    avg_latency_ms: float | None = None
    error_rate: float = 0.0


class InstanceView(_View):
    """One worker instance (every ``EnhancedInstance`` field)."""

    server_id: str
    incarnation: str
    ip: str
    port: int
    max_streams: int
    zone: str | None = None
    tags: list[str] = []
    status: InstanceStatus
    draining: bool
    current_streams: int
    load: int
    registered_at: datetime | None = None
    last_heartbeat: datetime | None = None
    performance_metrics: MetricsView | None = None
    failure_count: int = 0
    recovery_attempts: int = 0
    quarantined_until: datetime | None = None
    drained_at: datetime | None = None
    last_failure_at: datetime | None = None
    load_factor: float | None = Field(default=None, description="load / max_streams")
    drained: bool = False
    as_of_seq: int = Field(description="seq of the batch that last wrote this instance")


class InstancesResponse(Seq):
    instances: list[InstanceView]


# --- streams ------------------------------------------------------------------------------


class MigrationView(_View):
    """A migration in flight as the assignment record shows it."""

    migration_id: str
    to_server: str
    to_incarnation: str | None = None
    started_at: datetime | None = None
    deadline: datetime | None = None


class StreamSummary(BaseModel):
    """A stream in a list: where it runs and why it last changed."""

    stream_id: str
    server_id: str | None
    incarnation: str | None
    status: AssignmentStatus
    weight: int
    priority: int
    assigned_at: datetime | None
    migration: MigrationView | None
    reason: str
    as_of_seq: int = Field(description="seq of the event that last changed the stream")


class InstanceResponse(Seq):
    instance: InstanceView
    streams: list[StreamSummary] = Field(description="the streams it owns")


class StreamsPage(Seq):
    streams: list[StreamSummary]
    limit: int
    offset: int
    total: int = Field(description="streams matching the filters")
    next_offset: int | None = Field(description="offset of the next page; null on the last")


class StreamView(_View):
    """One stream (every ``StreamAssignment`` field, ``params`` as an object)."""

    stream_id: str
    weight: int
    priority: int
    zone: str | None = None
    anti_affinity: str | None = None
    params: dict[str, str] = {}
    server_id: str | None = None
    incarnation: str | None = None
    assigned_at: datetime | None = None
    status: AssignmentStatus
    failure_count: int = 0
    failed_on: list[str] = []
    last_error: str | None = None
    registered_at: datetime | None = None
    migration: MigrationView | None = None
    reason: str


class EventView(BaseModel):
    """A control event as the read model's audit table keeps it."""

    log_offset: int
    seq: int
    epoch: int
    id: str
    type: str
    time: datetime
    subject: str | None
    reason: str | None
    causationid: str | None
    correlationid: str | None
    finding: str | None = Field(description="why the fold refused it; null: applied")
    data: dict[str, Any]


class StreamResponse(Seq):
    stream: StreamView
    changed_at_seq: int
    owner_failure: EventView | None = Field(
        description="the InstanceFailed that last moved this stream off its owner, if any"
    )


class MigrationRow(BaseModel):
    migration_id: str
    stream_id: str
    from_server: str
    to_server: str
    reason: str
    plan_id: str | None
    started_at: datetime
    deadline: datetime
    started_seq: int
    outcome: str = Field(description="in_flight, completed, aborted or cancelled")
    outcome_reason: str | None
    ended_at: datetime | None
    ended_seq: int | None


class HistoryResponse(Seq):
    stream_id: str
    events: list[EventView]
    migrations: list[MigrationRow]
    owner_failures: list[EventView] = Field(
        description="each InstanceFailed that moved this stream, oldest first"
    )
    limit: int
    offset: int
    next_offset: int | None


class MigrationsPage(Seq):
    migrations: list[MigrationRow]
    limit: int
    offset: int
    next_offset: int | None


class LagResponse(Seq):
    """How far the read model is behind the control log."""

    read_model: str
    next_offset: int = Field(description="the next log offset the read model will apply")
    log_end_offset: int = Field(description="the control log's end (last stable offset)")
    lag_records: int = Field(description="log_end_offset - next_offset (never negative)")
    updated_at: datetime | None


class AssignmentRecord(BaseModel):
    """A stream as the ``<prefix>.assignments`` topic carries it (docs/read_side.md)."""

    stream_id: str
    server_id: str | None
    incarnation: str | None
    status: AssignmentStatus
    migration: MigrationView | None
    reason: str
    assigned_at: datetime | None
    as_of_seq: int
    epoch: int
    time: datetime | None


class StateResponse(Seq):
    """The state the control log described at a time or seq (a replay)."""

    at: datetime | None
    seq: int | None
    health: HealthView
    instances: list[InstanceView]
    streams: list[AssignmentRecord]


class AlertView(_View):
    """A firing alert (an ``AlertFired`` record of ``<prefix>.alerts``, docs/events.md)."""

    key: str = Field(description="rule:subject")
    rule: str
    severity: Literal["info", "warning", "critical"]
    status: Literal["firing"] = "firing"
    summary: str
    evidence: dict[str, str] = {}
    action: str = Field(description="what an operator should do about it")
    seq: int = Field(description="the control-log seq the monitor had folded when it fired")
    time: datetime = Field(description="when the monitor decided it")
    held_back: int = 0


class AlertsResponse(Seq):
    alerts: list[AlertView] = Field(description="the firing alerts, worst first")
    keys: int = Field(description="alert keys on the topic (firing or resolved)")


# --- commands -----------------------------------------------------------------------------


#: PostgreSQL's text and jsonb cannot hold the NUL character: the read model would fail on
#: an event carrying one, so the API refuses it at the door (400, and in the document)
_NO_NUL = StringConstraints(pattern=r"^[^\x00]*$")
_Text = Annotated[str, _NO_NUL]


class RegisterStreamBody(_Body):
    stream_id: StreamId
    weight: int = Field(default=1, ge=1, le=MAX_WEIGHT)
    priority: int = Field(default=0, ge=-1000, le=1000)
    zone: Annotated[Tag, _NO_NUL] | None = None
    anti_affinity: Annotated[Tag, _NO_NUL] | None = None
    params: dict[_Text, _Text] = Field(
        default_factory=dict, max_length=64, json_schema_extra={"additionalProperties": False}
    )


class CapacityBody(_Body):
    max_streams: int = Field(ge=0, le=MAX_CAPACITY)


class CommandAccepted(BaseModel):
    """202: the command is on the commands topic; its outcome will be in the log."""

    status: Literal["accepted"] = "accepted"
    command_id: str
    command_type: str


class CommandOutcome(Seq):
    """200: the orchestrator carried the command out."""

    command_id: str
    outcome: dict[str, Any] = Field(description="the CommandCompleted event (CloudEvents JSON)")
    events: list[dict[str, Any]] = Field(description="the events the command caused")
