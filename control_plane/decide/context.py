"""The decision context: emits events one at a time, folding each into a working state.

Every step of ``decide`` sees the effects of the steps before it, because each event is
applied to ``ctx.state`` the moment it is emitted. An event the fold would refuse is never
emitted: it is recorded in ``ctx.dropped`` (a bug in a decision step, logged by the shell).

The balancer is built from ``config.balancer`` with the context, once per ``decide`` call:
building one is a single small allocation, and nothing outlives the call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from control_plane.decide.balancer import SmartLoadBalancer
from control_plane.decide.config import DecideConfig
from events.base import ControlEvent
from projections.fold import apply
from projections.fold.state import ClusterState

E = TypeVar("E", bound=ControlEvent)


@dataclass(slots=True)
class Ctx:
    state: ClusterState
    now: datetime
    new_id: Callable[[], str]
    config: DecideConfig
    source: str
    events: list[ControlEvent] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    #: servers whose desired set must be re-sent even if unchanged (repairs)
    republish: set[str] = field(default_factory=set)
    #: human-readable alerts for the shell to log (no capacity, poison, ...)
    alerts: list[str] = field(default_factory=list)
    #: the command being carried out and who issued it (None outside a command): every event
    #: emitted while carrying it out (what it states and what follows at once, such as a new
    #: stream's placement) carries its ``causationid`` and ``principal``
    causation: str | None = None
    principal: str | None = None
    #: the balancer with ``config.balancer``'s thresholds
    balancer: SmartLoadBalancer = field(init=False)

    def __post_init__(self) -> None:
        self.balancer = SmartLoadBalancer(self.config.balancer)

    def emit(self, cls: type[E], *, causation: str | None = None, **fields: Any) -> E | None:
        """Build the next event (seq, epoch, id, time filled in), fold it, keep it.
        ``causation``: the event that caused it, else the command being carried out."""
        if causation is None:
            causation = self.causation
        event = cls(
            id=self.new_id(),
            source=self.source,
            time=self.now,
            seq=self.state.seq + 1,
            epoch=self.state.epoch,
            causationid=causation,
            principal=self.principal if causation is not None else None,
            **fields,
        )
        return self.emit_event(event)

    def emit_event(self, event: E) -> E | None:
        before = self.state.finding_count
        after = apply(self.state, event)
        if after.finding_count != before:
            finding = after.findings[-1]
            self.dropped.append(f"{finding.event_type}: {finding.kind}: {finding.detail}")
            return None
        self.state = after
        self.events.append(event)
        return event
