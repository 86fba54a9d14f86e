"""The alert rules: each reads one observation (folded state, remembered history, metric
verdicts, ``now``) and yields the :class:`Condition` values that hold *now*.

A rule says nothing about what fired before: de-duplication, hysteresis and rate limits are the
engine's (:mod:`control_plane.alerts.engine`). A rule's key is ``rule:subject``; one condition per
subject, so a zone outage is one alert per zone, not one per instance.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import NamedTuple

from control_plane.alerts.memory import Memory
from control_plane.alerts.model import (
    DEAD_LETTERS,
    LONG_TRANSACTIONS,
    AlertConfig,
    Condition,
    Evidence,
    Json,
    Severity,
)
from events.control import Reasons
from projections.fold.state import AssignmentStatus, ClusterState, InstanceStatus


class Facts(NamedTuple):
    state: ClusterState
    memory: Memory
    now: datetime
    config: AlertConfig


def _evidence(**values: Json) -> Evidence:
    """Sorted pairs: equal evidence compares equal, and floats stay JSON (no NaN/inf)."""
    clean = {
        k: (round(v, 6) if math.isfinite(v) else None) if isinstance(v, float) else v
        for k, v in values.items()
    }
    return tuple(sorted(clean.items()))


def _span(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    return f"{seconds // 60} min" if seconds >= 120 and seconds % 60 == 0 else f"{seconds} s"


def instance_flapping(f: Facts) -> Iterator[Condition]:
    """An instance that keeps going down (suspected or failed) within a window, or that the
    orchestrator already quarantined for it."""
    since = f.now - f.config.flap_window
    for sid, inst in f.state.instances.items():
        drops = sum(1 for d in f.memory.drops.get(sid, ()) if d.at > since)
        quarantined = inst.status is InstanceStatus.QUARANTINED
        if drops < f.config.flap_count and not quarantined:
            continue
        until = inst.quarantined_until.isoformat() if inst.quarantined_until else None
        what = f"went down {drops} times in {_span(f.config.flap_window)}"
        yield Condition(
            f"instance_flapping:{sid}",
            Severity.WARNING,
            f"instance {sid} is quarantined ({what})" if quarantined else f"instance {sid} {what}",
            _evidence(drops=drops, failure_count=inst.failure_count, quarantined_until=until),
            f"check {sid}'s host (network, OOM kills, restarts); drain it if it keeps flapping",
        )


def zone_failures(f: Facts) -> Iterator[Condition]:
    """Several instances of one zone went down within a window: the zone, not the instances."""
    since = f.now - f.config.zone_window
    by_zone: dict[str, list[str]] = {}
    for sid, inst in f.state.instances.items():
        if inst.zone is not None and any(d.at > since for d in f.memory.drops.get(sid, ())):
            by_zone.setdefault(inst.zone, []).append(sid)
    for zone, servers in sorted(by_zone.items()):
        if len(servers) >= f.config.zone_count:
            yield Condition(
                f"zone_failures:{zone}",
                Severity.CRITICAL,
                f"{len(servers)} instances of zone {zone} went down "
                f"in {_span(f.config.zone_window)}",
                _evidence(zone=zone, instances=tuple(sorted(servers))),
                f"check zone {zone}'s network and hosts; its streams are being moved elsewhere",
            )


def learned_signals(f: Facts) -> Iterator[Condition]:
    """A metric past its learned normal for this cluster, or past its static bound."""
    for spec in f.config.signals:
        v = f.memory.verdicts.get(spec.name)
        if v is None or not v.alert:
            continue
        why = (
            f"past its bound {spec.baseline.bound:g}"
            if v.cause == "bound"
            else f"{v.score:.1f} deviations from its usual {v.mean:g}"
        )
        yield Condition(
            f"{spec.rule}:cluster",
            spec.severity,
            f"{spec.what} is {v.value:g}, {why}",
            _evidence(
                bound=spec.baseline.bound, **{k: x for k, x in v._asdict().items() if k != "alert"}
            ),
            spec.action,
        )


def streams_unassigned(f: Facts) -> Iterator[Condition]:
    """Streams waiting longer than ``unassigned_for``. Two keys, because the action differs:
    ``capacity_free`` (critical: a live instance has room for the lightest of them, so placement
    itself is stuck) and ``no_capacity`` (warning: the cluster is full)."""
    stuck = sorted(
        (since, sid)
        for sid, since in f.memory.unplaced_since.items()
        if f.now - since >= f.config.unassigned_for
    )
    if not stuck:
        return
    since, oldest = stuck[0]
    weights = (f.state.streams[sid].weight for _, sid in stuck if sid in f.state.streams)
    lightest = min(weights, default=1)
    live = [i for i in f.state.instances.values() if i.should_receive_streams()]
    room = max((i.free_capacity() for i in live), default=0)
    evidence = _evidence(
        streams=len(stuck),
        oldest_stream=oldest,
        oldest_waiting_seconds=(f.now - since).total_seconds(),
        free_capacity=sum(i.free_capacity() for i in live),
        largest_room=room,
        lightest_weight=lightest,
    )
    head = f"{len(stuck)} streams unassigned for over {_span(f.config.unassigned_for)}"
    if room >= lightest:
        yield Condition(
            "streams_unassigned:capacity_free",
            Severity.CRITICAL,
            f"{head} although instances have room",
            evidence,
            "placement is stuck: check the waiting streams' zone and anti-affinity "
            "constraints, maintenance mode and the orchestrator's logs",
        )
    else:
        yield Condition(
            "streams_unassigned:no_capacity",
            Severity.WARNING,
            f"{head}: no instance has room",
            evidence,
            "add instances or raise max_streams: the cluster is full",
        )


def poison_streams(f: Facts) -> Iterator[Condition]:
    """A stream parked as poison, or still waiting after failing on several instances."""
    for sid, s in f.state.streams.items():
        parked = s.status is AssignmentStatus.FAILED
        waiting = s.status is AssignmentStatus.UNASSIGNED
        if not parked and not (waiting and len(s.failed_on) >= f.config.poison_instances):
            continue
        yield Condition(
            f"poison_stream:{sid}",
            Severity.WARNING,
            f"stream {sid} failed on {len(s.failed_on)} instances"
            + (" and is parked" if parked else ""),
            _evidence(
                parked=parked,
                failed_on=s.failed_on,
                failure_count=s.failure_count,
                last_error=s.last_error,
            ),
            f"read {sid}'s last error and fix its source or params, then register it again",
        )


def maintenance_mode(f: Facts) -> Iterator[Condition]:
    """Failovers are frozen: the mass-failure guard tripped, or an operator froze them."""
    if not f.state.maintenance:
        return
    reason = f.state.maintenance_reason
    statuses = [i.status for i in f.state.instances.values()]
    guard = reason == Reasons.MASS_FAILURE
    yield Condition(
        "maintenance_mode:cluster",
        Severity.CRITICAL,
        ("mass-failure guard tripped" if guard else f"maintenance mode ({reason})")
        + ": failovers are frozen",
        _evidence(
            reason=reason,
            suspected=statuses.count(InstanceStatus.SUSPECTED),
            failed=statuses.count(InstanceStatus.FAILED),
        ),
        "find out why many instances went silent at once (network partition, the "
        "orchestrator's own lag) and leave maintenance mode once heartbeats are back",
    )


def long_transactions(f: Facts) -> Iterator[Condition]:
    """Database transactions open longer than the I/O side's bound (it counts them)."""
    count = f.memory.values.get(LONG_TRANSACTIONS)
    if count is not None and count > f.config.long_transactions_max:
        yield Condition(
            "long_db_transactions:cluster",
            Severity.WARNING,
            f"{count:g} long database transactions open",
            _evidence(count=count, allowed=f.config.long_transactions_max),
            "look at pg_stat_activity for the oldest transactions; they block vacuum and locks",
        )


def dead_letters(f: Facts) -> Iterator[Condition]:
    """The dead-letter counter went up within ``dead_letter_window``."""
    at = f.memory.increased_at.get(DEAD_LETTERS)
    if at is None or f.now - at >= f.config.dead_letter_window:
        return
    total = f.memory.values.get(DEAD_LETTERS)
    yield Condition(
        "dead_letters:cluster",
        Severity.WARNING,
        f"dead letters appeared (total {total:g})" if total is not None else "dead letters",
        _evidence(total=total, last_increase_at=at.isoformat()),
        "read the newest dead letters: an undecodable or rejected record was set aside",
    )


def refused_heartbeats(f: Facts) -> Iterator[Condition]:
    """Heartbeats claiming one server id were refused (unsigned, forged, unenrolled,
    revoked...) within ``refused_window``: one alert per claimed id, however many arrive."""
    for source, seen in sorted(f.memory.refused.items()):
        last = seen.last
        yield Condition(
            f"heartbeat_refused:{source}",
            Severity.CRITICAL if last.reason in _FORGERY else Severity.WARNING,
            f"heartbeats as {source} refused ({last.reason})",
            _evidence(count=seen.refusals, last_reason=last.reason, last_at=last.at.isoformat()),
            f"read the dead letters of {source} (origin heartbeats): a process without its "
            "enrolled key writes heartbeats in its name; if it is a worker of yours, enroll "
            "it (streamplane instances enroll) or give it its key file",
        )


#: reasons that mean someone else signs in the id's name (not merely a missing enrollment)
_FORGERY = frozenset(
    {"session_mismatch", "wrong_key", "bad_signature", "bad_mac", "replayed", "revoked"}
)


def rejected_commands(f: Facts) -> Iterator[Condition]:
    """One command type rejected ``reject_count`` times within ``reject_window``."""
    since = f.now - f.config.reject_window
    for ctype, seen in sorted(f.memory.rejections.items()):
        recent = [r for r in seen if r.at > since]
        if len(recent) < f.config.reject_count:
            continue
        last = recent[-1]
        yield Condition(
            f"command_rejected:{ctype}",
            Severity.WARNING,
            f"{ctype} rejected {len(recent)} times in {_span(f.config.reject_window)}",
            _evidence(count=len(recent), last_reason=last.reason, last_detail=last.detail),
            f"read the rejection reason ({last.reason}): someone is retrying a {ctype} "
            "that cannot succeed",
        )


RULES: tuple[Callable[[Facts], Iterator[Condition]], ...] = (
    instance_flapping,
    zone_failures,
    learned_signals,
    streams_unassigned,
    poison_streams,
    maintenance_mode,
    long_transactions,
    dead_letters,
    refused_heartbeats,
    rejected_commands,
)


def conditions(facts: Facts) -> dict[str, Condition]:
    """Every condition that holds now, by key."""
    return {c.key: c for rule in RULES for c in rule(facts)}
