"""The seed's AlertManager, pure: conditions in, de-duplicated and rate-limited transitions out.

Per key (``rule:subject``), the engine compares what the rules find now with what it last
*emitted*, and emits only changes:

- **firing** once, when a condition first holds (evaluating again changes nothing: the alert
  stays in :func:`firing` with its newest evidence, and no second transition comes out);
- **resolved** once, when the condition has been clear for ``resolve_after`` (hysteresis: a
  condition that blinks off for one evaluation does not resolve, and so cannot re-fire);
- **rate limit**: at most ``rate_max`` transitions per key within ``rate_window``. A transition
  over the limit is *held back, not lost*: the emitted status stays as it was, and the first
  evaluation after the window frees up emits the then-current status, its ``held_back`` saying
  how many status changes were skipped. A burst that nets out to no change is forgotten once the
  key's window is empty (nothing is left to report).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

import immutables

from control_plane.alerts.errors import InvalidInput
from control_plane.alerts.memory import Memory, remember
from control_plane.alerts.model import (
    Alert,
    AlertConfig,
    AlertStatus,
    Condition,
    Observation,
    Severity,
)
from control_plane.alerts.rules import Facts, conditions

FIRING, RESOLVED = AlertStatus.FIRING, AlertStatus.RESOLVED
_RANK = {Severity.CRITICAL: 0, Severity.WARNING: 1, Severity.INFO: 2}


class Held(NamedTuple):
    """A key's status changes held back by the rate limit: the latest wanted status, and how
    many times the wanted status changed."""

    wanted: AlertStatus
    changes: int


class EngineState(NamedTuple):
    """Everything the engine remembers between evaluations (keep it; pass it back in)."""

    #: emitted as firing and not resolved since, with the newest evidence
    active: immutables.Map[str, Alert] = immutables.Map()
    #: firing keys whose condition is clear, since when (for ``resolve_after``)
    clear_since: immutables.Map[str, datetime] = immutables.Map()
    #: times of each key's transitions within ``rate_window``
    sent: immutables.Map[str, tuple[datetime, ...]] = immutables.Map()
    held: immutables.Map[str, Held] = immutables.Map()
    memory: Memory = Memory()


def evaluate(
    engine: EngineState, observation: Observation, *, now: datetime, config: AlertConfig
) -> tuple[EngineState, tuple[Alert, ...]]:
    """One evaluation: the new engine state and the transitions to publish, in key order."""
    if now.tzinfo is None:
        raise InvalidInput(f"now must carry a timezone (UTC expected), got {now!r}")
    memory = remember(engine.memory, observation, now=now, config=config)
    found = conditions(Facts(observation.state, memory, now, config))
    draft = _Draft(engine, now, observation.state.seq, config)
    for key in sorted(set(found) | set(engine.active) | set(engine.held)):
        draft.step(key, found.get(key))
    draft.forget_quiet_keys()
    return draft.finish(memory), tuple(draft.out)


def firing(engine: EngineState) -> tuple[Alert, ...]:
    """The alerts firing now (as emitted, with their newest evidence), worst first."""
    return tuple(sorted(engine.active.values(), key=lambda a: (_RANK[a.severity], a.key)))


class _Draft:
    """The maps being rebuilt in one evaluation: plain dicts (few keys: the firing and the
    rate-limited ones), local to :func:`evaluate`, frozen again by :meth:`finish`."""

    def __init__(self, engine: EngineState, now: datetime, seq: int, config: AlertConfig):
        self.now, self.seq, self.config = now, seq, config
        self.active: dict[str, Alert] = dict(engine.active)
        self.clear: dict[str, datetime] = dict(engine.clear_since)
        self.sent: dict[str, tuple[datetime, ...]] = dict(engine.sent)
        self.held: dict[str, Held] = dict(engine.held)
        self.out: list[Alert] = []

    def step(self, key: str, cond: Condition | None) -> None:
        alert = self.active.get(key)
        if cond is not None:
            self.clear.pop(key, None)
            if alert is None:
                self._want(key, FIRING, cond)
                return
            # still firing: the view shows the newest evidence; nothing is emitted
            self.active[key] = _alert(cond, alert.seq, FIRING, alert.at, alert.held_back)
            self._note(key, FIRING)
        elif alert is None:
            self._note(key, RESOLVED)
        else:
            since = self.clear.setdefault(key, self.now)  # clear since the first clear look
            if self.now - since >= self.config.resolve_after:
                self._want(key, RESOLVED, alert)
            else:
                self._note(key, FIRING)

    def _note(self, key: str, wanted: AlertStatus) -> Held | None:
        """Count a change of the wanted status of a key whose transitions are held back."""
        held = self.held.get(key)
        if held is not None and held.wanted is not wanted:
            held = self.held[key] = Held(wanted, held.changes + 1)
        return held

    def _want(self, key: str, wanted: AlertStatus, source: Condition | Alert) -> None:
        """A transition to ``wanted`` is due: emit it, or hold it back over the rate limit."""
        held = self._note(key, wanted)
        recent = self._recent(key)
        if len(recent) >= self.config.rate_max:
            self.held[key] = held or Held(wanted, 1)
            return
        # every change held back is skipped but the last one, which is emitted now
        skipped = self.held.pop(key).changes - 1 if held is not None else 0
        alert = _alert(source, self.seq, wanted, self.now, skipped)
        self.out.append(alert)
        self.sent[key] = (*recent, self.now)
        if wanted is FIRING:
            self.active[key] = alert
        else:
            self.active.pop(key, None)
            self.clear.pop(key, None)

    def _recent(self, key: str) -> tuple[datetime, ...]:
        start = self.now - self.config.rate_window
        return tuple(t for t in self.sent.get(key, ()) if t > start)

    def forget_quiet_keys(self) -> None:
        """Drop rate-limit records whose window is empty, and held changes of such keys."""
        self.sent = {k: recent for k in self.sent if (recent := self._recent(k))}
        self.held = {k: h for k, h in self.held.items() if k in self.sent}

    def finish(self, memory: Memory) -> EngineState:
        return EngineState(
            immutables.Map(self.active),
            immutables.Map(self.clear),
            immutables.Map(self.sent),
            immutables.Map(self.held),
            memory,
        )


def _alert(
    source: Condition | Alert, seq: int, status: AlertStatus, at: datetime, held_back: int
) -> Alert:
    key, severity, summary, evidence, action = source[:5]  # the fields both share
    return Alert(key, severity, summary, evidence, action, seq, status, at, held_back)


@dataclass(frozen=True, slots=True)
class AlertManager:
    """The seed's AlertManager as a pure value: ``manager, sent = manager.evaluate(obs, now=t)``.

    The seed's HealthMonitor is the shell that builds each :class:`Observation` (the folded
    state, the new control events, the metric samples) and publishes what comes out."""

    config: AlertConfig = field(default_factory=AlertConfig)
    state: EngineState = field(default_factory=EngineState)

    def evaluate(
        self, observation: Observation, *, now: datetime
    ) -> tuple[AlertManager, tuple[Alert, ...]]:
        state, transitions = evaluate(self.state, observation, now=now, config=self.config)
        return AlertManager(self.config, state), transitions

    def firing(self) -> tuple[Alert, ...]:
        return firing(self.state)
