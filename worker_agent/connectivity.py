"""How well the worker reaches Kafka, and its heartbeat lease: plain state the agent updates
after every Kafka call and reacts to (pure: the caller passes the time).

The **mode** comes from the last outcome of each direction: both work (``connected``), one
does (``partial``), none does (``local``: the streams keep running on what the worker has).

The **lease** (``heartbeat_lease``, off by default) bounds how long the worker keeps its
streams while no heartbeat of its reaches the brokers. The orchestrator fails an instance it
has not heard from for ``fail_after`` and runs its streams elsewhere; a worker cut off from
Kafka alone would otherwise run them too until it reconnects and reads its fence. With a
lease shorter than ``fail_after`` (less the time its streams take to stop) it stops them
first, so a stream never runs twice, at the price of stopping work during an outage of Kafka
itself, which it cannot tell from being cut off (docs/worker.md, "Resilience").
"""

from __future__ import annotations

from enum import StrEnum


class Mode(StrEnum):
    """How well the worker reaches Kafka."""

    CONNECTED = "connected"
    LOCAL = "local"  # neither direction works: run on what we have
    PARTIAL = "partial"  # one direction works, the other does not


class Link:
    """Each direction's last outcome, the mode they make, and when a heartbeat was last
    delivered (acknowledged by the brokers). Optimistic until a call fails: a fresh worker
    is neither partial nor past its lease before its first try."""

    def __init__(self, now: float, lease: float | None = None) -> None:
        self.produce_ok = True
        self.consume_ok = True
        self.mode = Mode.CONNECTED
        self.lease = lease
        self.delivered_at = now

    @property
    def partial(self) -> str | None:
        """Which direction fails in partial mode ("cannot produce" / "cannot consume")."""
        if self.mode is not Mode.PARTIAL:
            return None
        return "cannot produce" if self.consume_ok else "cannot consume"

    def produced(self, ok: bool, now: float) -> Mode | None:
        """A heartbeat was delivered (``ok``) or not; the new mode if it changed."""
        if ok:
            self.delivered_at = now
        self.produce_ok = ok
        return self._update()

    def consumed(self, ok: bool) -> Mode | None:
        """The desired sets could be read (``ok``) or not; the new mode if it changed."""
        self.consume_ok = ok
        return self._update()

    def lease_expired(self, now: float) -> bool:
        """Whether no heartbeat was delivered for longer than the lease (never without one)."""
        return self.lease is not None and now - self.delivered_at > self.lease

    def silent_for(self, now: float) -> float:
        return now - self.delivered_at

    def _update(self) -> Mode | None:
        produce, consume = self.produce_ok, self.consume_ok
        mode = Mode.CONNECTED if produce and consume else Mode.PARTIAL
        if not produce and not consume:
            mode = Mode.LOCAL
        if mode is self.mode:
            return None
        self.mode = mode
        return mode


__all__ = ["Link", "Mode"]
