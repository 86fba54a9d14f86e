"""The state every projection folds to, and the seed's models over it.

All values are frozen dataclasses (slotted, except the three the fold copies on nearly
every event: :class:`ClusterState`, :class:`EnhancedInstance`, :class:`StreamAssignment`)
and collections are persistent ``immutables.Map`` (a HAMT: an update shares structure with
the old map), so ``apply`` returns a new state in O(log n) without copying 100k streams per event.

Seed vocabulary kept: :class:`EnhancedInstance` (``calculate_load_factor``, ``is_healthy``,
``should_receive_streams``), :class:`StreamAssignment` (``is_active``, ``can_migrate``) and
:class:`SystemHealth` (``overall_health``, ``needs_intervention``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

import immutables

from events.heartbeat import PerformanceMetrics, StreamPerformance

_T = TypeVar("_T")
_REPLACERS: dict[type, Callable[..., Any]] = {}
_BUILDERS: dict[type, Callable[[dict[str, Any]], Any]] = {}


def _make_replacer(cls: type) -> Callable[..., Any]:
    """A fast ``replace`` for one frozen dataclass (made once per class), without running
    ``__init__`` (none of these classes has ``__post_init__``).

    ``dataclasses.replace`` was ~60% of the fold's time: it calls ``__init__``, which sets
    each field through a frozen ``object.__setattr__``. For a class with a ``__dict__`` the
    copy is one dict copy and update. For a slotted class, straight-line code is generated:
    every field a keyword-only argument defaulting to a sentinel, each slot set through its
    descriptor."""
    names = [f.name for f in dataclasses.fields(cls)]
    if "__slots__" not in cls.__dict__:
        return _dict_replacer(cls, frozenset(names))
    env: dict[str, Any] = {"_new": object.__new__, "_cls": cls, "_KEEP": _KEEP}
    lines = [f"def replace_{cls.__name__}(obj, /, *, {', '.join(f'{n}=_KEEP' for n in names)}):"]
    lines.append("    new = _new(_cls)")
    for n in names:
        slot = cls.__dict__[n]
        env[f"_set_{n}"], env[f"_get_{n}"] = slot.__set__, slot.__get__
        lines.append(f"    _set_{n}(new, _get_{n}(obj) if {n} is _KEEP else {n})")
    lines.append("    return new")
    exec("\n".join(lines), env)  # the source is built above from field names only
    fn: Callable[..., Any] = env[f"replace_{cls.__name__}"]
    return fn


def _dict_replacer(cls: type, names: frozenset[str]) -> Callable[..., Any]:
    new, set_dict = object.__new__, object.__setattr__
    size = len(names)

    def replace_dict(obj: Any, /, **changes: Any) -> Any:
        values = obj.__dict__.copy()
        values.update(changes)
        if len(values) != size:  # a name that is not a field added a key: O(1) to notice
            raise TypeError(f"{cls.__name__} has no field(s) {sorted(set(changes) - names)}")
        copy: Any = new(cls)
        set_dict(copy, "__dict__", values)
        return copy

    replace_dict.__name__ = f"replace_{cls.__name__}"
    return replace_dict


class _Keep:
    __slots__ = ()

    def __repr__(self) -> str:
        return "<keep>"


_KEEP: Any = _Keep()


def _fast_replace(obj: _T, /, **changes: Any) -> _T:
    """``dataclasses.replace`` for these frozen, slotted classes, generated per class;
    an unknown field name raises ``TypeError`` as ``dataclasses.replace`` does."""
    result: _T = replacer(type(obj))(obj, **changes)
    return result


def replacer(cls: type[_T]) -> Callable[..., _T]:
    """The generated ``replace`` of ``cls`` itself, for hot paths (skips one call and the
    ``**changes`` repacking of :func:`replace`; field names are checked when called)."""
    fn = _REPLACERS.get(cls)
    if fn is None:
        fn = _REPLACERS[cls] = _make_replacer(cls)
    return fn


def builder(cls: type[_T]) -> Callable[[dict[str, Any]], _T]:
    """A function making the instance of ``cls`` (a frozen dataclass with a ``__dict__``)
    whose fields are exactly the dict it is given, without ``__init__``: that dict *becomes*
    the instance's ``__dict__``, so pass one nobody else holds. How the fold's working
    copies (:class:`projections.fold.transitions.draft.Draft`) become values again; a dict
    with a field too many or too few raises ``TypeError``."""
    fn = _BUILDERS.get(cls)
    if fn is None:
        fn = _BUILDERS[cls] = _dict_builder(cls)
    return fn


def _dict_builder(cls: Any) -> Callable[[dict[str, Any]], Any]:
    size = len(dataclasses.fields(cls))
    if "__slots__" in cls.__dict__:
        raise TypeError(f"{cls.__name__} is slotted: it has no __dict__ to build it from")
    new, set_dict = object.__new__, object.__setattr__

    def build(fields: dict[str, Any]) -> Any:
        if len(fields) != size:
            raise TypeError(f"{cls.__name__} has {size} fields, not {sorted(fields)}")
        made: Any = new(cls)
        set_dict(made, "__dict__", fields)
        return made

    build.__name__ = f"build_{cls.__name__}"
    return build


if TYPE_CHECKING:
    from dataclasses import replace as replace  # mypy checks field names against this one
else:
    replace = _fast_replace


class InstanceStatus(StrEnum):
    ACTIVE = "active"
    SUSPECTED = "suspected"
    QUARANTINED = "quarantined"
    FAILED = "failed"
    LEFT = "left"


#: an instance in one of these states holds nothing: its streams are up for reassignment
GONE_STATUSES = frozenset({InstanceStatus.FAILED, InstanceStatus.LEFT})


class AssignmentStatus(StrEnum):
    UNASSIGNED = "unassigned"  # waiting for capacity
    ASSIGNED = "assigned"  # the owner was told to start it
    RUNNING = "running"  # the owner reported it running
    MIGRATING = "migrating"  # running on the owner, starting on a target
    FAILED = "failed"  # parked as poison: no more attempts until re-registered


class HealthStatus(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    CRITICAL = "critical"


class FindingKind(StrEnum):
    """Why the fold refused an event (or noticed a hole in the log)."""

    SEQ_GAP = "seq_gap"
    CONFLICTING_SEQ = "conflicting_seq"
    STALE_SEQ = "stale_seq"
    STALE_EPOCH = "stale_epoch"
    UNKNOWN_EPOCH = "unknown_epoch"
    TWO_OWNERS = "two_owners"
    CAPACITY_EXCEEDED = "capacity_exceeded"
    UNKNOWN_STREAM = "unknown_stream"
    UNKNOWN_INSTANCE = "unknown_instance"
    INVALID_TRANSITION = "invalid_transition"


@dataclass(frozen=True, slots=True)
class Finding:
    """An invariant the log tried to break; the offending event had no effect."""

    seq: int
    kind: FindingKind
    event_id: str
    event_type: str
    detail: str


# Not slotted, unlike the other values: the fold copies an instance on most events, and a
# frozen dataclass with a ``__dict__`` is copied with one dict copy (see _make_replacer).
@dataclass(frozen=True)
class EnhancedInstance:
    """One worker instance (the current incarnation of a ``server_id``)."""

    server_id: str
    incarnation: str
    ip: str
    port: int
    max_streams: int
    zone: str | None = None
    tags: tuple[str, ...] = ()
    status: InstanceStatus = InstanceStatus.ACTIVE
    draining: bool = False
    #: streams owned (``current_streams``) and weight held incl. incoming migrations (``load``)
    current_streams: int = 0
    load: int = 0
    registered_at: datetime | None = None
    last_heartbeat: datetime | None = None
    performance_metrics: PerformanceMetrics = field(default_factory=PerformanceMetrics)
    failure_count: int = 0
    recovery_attempts: int = 0
    quarantined_until: datetime | None = None
    #: when ``performance_metrics`` was last sampled into the log
    metrics_at: datetime | None = None
    #: when a drain finished (``InstanceDrained``); None while not drained
    drained_at: datetime | None = None
    last_failure_at: datetime | None = None
    #: earlier incarnations of this server_id (newest last, bounded): their heartbeats are stale
    past_incarnations: tuple[str, ...] = ()

    def calculate_load_factor(self) -> float:
        """Held weight over capacity: 0.0 idle, 1.0 full (inf when over a zero capacity)."""
        if self.max_streams == 0:
            return 0.0 if self.load == 0 else float("inf")
        return self.load / self.max_streams

    def is_healthy(self) -> bool:
        return self.status is InstanceStatus.ACTIVE

    def free_capacity(self) -> int:
        return max(0, self.max_streams - self.load)

    def should_receive_streams(self) -> bool:
        """Healthy, not draining, not quarantined, and with room left."""
        return self.is_healthy() and not self.draining and self.free_capacity() > 0

    @property
    def drained(self) -> bool:
        return self.draining and self.load == 0


@dataclass(frozen=True, slots=True)
class MigrationState:
    """A make-before-break move in flight: ``to_server`` is starting, the owner keeps it."""

    migration_id: str
    from_server: str
    to_server: str
    to_incarnation: str
    started_at: datetime
    deadline: datetime
    reason: str
    plan_id: str | None = None


# Not slotted, for the same reason as EnhancedInstance (~0.5 us less per copy, ~200 bytes
# more per stream).
@dataclass(frozen=True)
class StreamAssignment:
    """One stream, its owner (``server_id``) and where it stands."""

    stream_id: str
    weight: int = 1
    priority: int = 0
    zone: str | None = None
    anti_affinity: str | None = None
    params: tuple[tuple[str, str], ...] = ()
    server_id: str | None = None
    incarnation: str | None = None
    assigned_at: datetime | None = None
    status: AssignmentStatus = AssignmentStatus.UNASSIGNED
    migration_state: MigrationState | None = None
    performance_data: StreamPerformance = field(default_factory=StreamPerformance)
    failure_count: int = 0
    failed_on: tuple[str, ...] = ()
    last_error: str | None = None
    registered_at: datetime | None = None

    def is_active(self) -> bool:
        return self.status in (
            AssignmentStatus.ASSIGNED,
            AssignmentStatus.RUNNING,
            AssignmentStatus.MIGRATING,
        )

    def can_migrate(self) -> bool:
        return self.status is AssignmentStatus.RUNNING and self.migration_state is None


@dataclass(frozen=True, slots=True)
class Enrollment:
    """The key a ``server_id``'s heartbeats must be signed with (``InstanceEnrolled``);
    ``revoked_at`` set: none of its heartbeats counts any more (``InstanceRevoked``)."""

    server_id: str
    public_key: str
    key_id: str
    enrolled_at: datetime
    enrolled_by: str = ""
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class PlannedMigration:
    stream_id: str
    from_server: str
    to_server: str


@dataclass(frozen=True, slots=True)
class RebalanceProgress:
    """A plan being carried out gradually (at most ``max_in_flight`` moves at once)."""

    plan_id: str
    moves: tuple[PlannedMigration, ...]
    started_seq: int
    #: stream ids whose planned migration has started
    started: frozenset[str] = frozenset()
    completed: int = 0
    aborted: int = 0


# Not slotted: the fold copies the state once per event, and with a ``__dict__`` that copy is
# one dict copy instead of ~20 slot reads and writes (the fold's largest single cost).
@dataclass(frozen=True)
class ClusterState:
    """``fold(control log)``: everything the orchestrator, projections and audits believe."""

    seq: int = 0
    epoch: int = 0
    leader_id: str | None = None
    last_event_time: datetime | None = None
    instances: immutables.Map[str, EnhancedInstance] = field(default_factory=immutables.Map)
    streams: immutables.Map[str, StreamAssignment] = field(default_factory=immutables.Map)
    maintenance: bool = False
    maintenance_reason: str | None = None
    rebalance: RebalanceProgress | None = None
    last_plan_id: str | None = None
    last_plan_at: datetime | None = None
    divergences_found: int = 0
    divergences_repaired: int = 0
    #: the last few findings (``finding_count`` has them all)
    findings: tuple[Finding, ...] = ()
    finding_count: int = 0
    #: stream_id -> migration_id of every migration in flight (index kept by the fold)
    in_flight: immutables.Map[str, str] = field(default_factory=immutables.Map)
    #: streams waiting for a home (status unassigned, not parked), index kept by the fold
    unplaced: immutables.Map[str, bool] = field(default_factory=immutables.Map)
    #: server_id -> the streams it must run (owned, or starting as a migration target)
    held: immutables.Map[str, immutables.Map[str, bool]] = field(default_factory=immutables.Map)
    #: seq -> event id of the last ``RECENT_WINDOW`` events: tells a duplicate from a conflict
    recent_ids: immutables.Map[int, str] = field(default_factory=immutables.Map)
    #: command id -> seq of its outcome, for idempotent commands (bounded window)
    processed_commands: immutables.Map[str, int] = field(default_factory=immutables.Map)
    #: server_id -> the key its heartbeats must be signed with (enrolled, maybe revoked)
    enrolled: immutables.Map[str, Enrollment] = field(default_factory=immutables.Map)

    def desired_streams(self, server_id: str) -> tuple[str, ...]:
        """What ``server_id`` must run: streams it owns or starts as a migration target."""
        held = self.held.get(server_id)
        return tuple(sorted(held)) if held is not None else ()
