"""Level-triggered reconciliation: desired set + what runs + retry bookkeeping -> actions.

Pure and synchronous: time, randomness and the current state are arguments. The agent calls
:func:`reconcile` on every tick and on every change, executes the plan, and feeds the
outcome back through :func:`record_start_failure` / :func:`forget_retries`. Running it twice
on the same inputs gives the same plan, so a missed tick or a duplicate wake-up is harmless.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import NamedTuple

from events.heartbeat import DesiredSet
from resilience.backoff import Backoff

Params = Mapping[str, str]


class RetryState(NamedTuple):
    """A stream whose start failed: how often, when to try again, and why it failed."""

    attempts: int
    next_at: float
    error: str


class Start(NamedTuple):
    """Start ``stream_id`` with ``params``."""

    stream_id: str
    params: Params


class Stop(NamedTuple):
    """Stop ``stream_id``."""

    stream_id: str


class Plan(NamedTuple):
    """What to do now. Stops come first so they free capacity for the starts."""

    stops: tuple[Stop, ...] = ()
    starts: tuple[Start, ...] = ()
    #: desired streams whose last start failed and whose back-off has not elapsed
    backing_off: tuple[str, ...] = ()
    #: desired streams left out because the worker is full (the orchestrator over-assigned)
    over_capacity: tuple[str, ...] = ()


def reconcile(
    *,
    desired: Mapping[str, Params],
    running: Mapping[str, Params],
    retries: Mapping[str, RetryState],
    capacity: int,
    now: float,
) -> Plan:
    """Start desired-not-running, stop running-not-desired, restart on changed params.

    ``running`` maps each stream the handler holds to the params it was started with.
    A stream in ``retries`` is started again only once ``now >= next_at``.
    """
    stops = [
        Stop(sid)
        for sid in sorted(running)
        if sid not in desired or dict(desired[sid]) != dict(running[sid])
    ]
    stopped = {s.stream_id for s in stops}
    free = capacity - (len(running) - len(stopped))
    starts: list[Start] = []
    backing_off: list[str] = []
    over: list[str] = []
    for sid in sorted(desired):
        if sid in running and sid not in stopped:
            continue
        retry = retries.get(sid)
        if retry is not None and now < retry.next_at:
            backing_off.append(sid)
        elif len(starts) < free:
            starts.append(Start(sid, dict(desired[sid])))
        else:
            over.append(sid)
    return Plan(tuple(stops), tuple(starts), tuple(backing_off), tuple(over))


def record_start_failure(
    previous: RetryState | None,
    *,
    error: str,
    now: float,
    backoff: Backoff,
    rand: Callable[[], float],
) -> RetryState:
    """The bookkeeping after a failed start: one more attempt, a jittered next try."""
    attempts = 1 if previous is None else previous.attempts + 1
    return RetryState(attempts, now + backoff.delay(attempts - 1, rand), error)


def forget_retries(
    retries: Mapping[str, RetryState], desired: Iterable[str]
) -> dict[str, RetryState]:
    """Drop the bookkeeping of streams no longer desired (a later re-assignment starts fresh)."""
    keep = set(desired)
    return {sid: r for sid, r in retries.items() if sid in keep}


def mismatch(desired: Iterable[str], healthy: Iterable[str]) -> tuple[str, ...]:
    """The self-check: streams desired but not healthy, and healthy but not desired."""
    return tuple(sorted(set(desired) ^ set(healthy)))


class DesiredVerdict(StrEnum):
    """What to do with a desired-set record read from Kafka."""

    APPLY = "apply"
    FENCE = "fence"
    IGNORE = "ignore"


def judge_desired(
    message: DesiredSet, *, server_id: str, incarnation: str, applied_seq: int
) -> DesiredVerdict:
    """Accept only records for this server and this incarnation, never an older ``seq``.

    A record for another incarnation is ignored while this process has not been given a set
    of its own yet (it belongs to an earlier process). Once it has (``applied_seq > 0``), a
    newer record for another incarnation means this one was superseded (a new process took
    the server_id, maybe while this one was cut off and missed its ``fenced`` record, which
    compaction may have removed): treat it as fenced.
    """
    if message.server_id != server_id:
        return DesiredVerdict.IGNORE
    if message.incarnation != incarnation:
        if applied_seq > 0 and message.seq > applied_seq:
            return DesiredVerdict.FENCE
        return DesiredVerdict.IGNORE
    if message.fenced:
        return DesiredVerdict.FENCE
    if message.seq < applied_seq:
        return DesiredVerdict.IGNORE
    return DesiredVerdict.APPLY


def desired_streams(message: DesiredSet) -> dict[str, Params]:
    """The stream -> params mapping a desired set asks for (params default to empty)."""
    return {sid: dict(message.params.get(sid, {})) for sid in message.streams}
