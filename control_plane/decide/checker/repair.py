"""The seed's ConsistencyErrorHandler: every repair is a command that becomes events.

Two halves, both pure:

- :func:`plan_repairs` splits a report into what the checker's shell puts right itself
  (projections rebuilt or republished from the log: they are folds of it, and the control
  log is not written for them) and what it sends to the orchestrator, the only writer of
  the log, in one ``RunConsistencyCheck(divergences=...)``.
- :func:`repair_reported` runs inside the orchestrator (``decide``): it checks each reported
  divergence again against its own state and observations, and repairs what still holds with
  events (``reason=consistency_repair``): an orphan is placed again (off a silent owner), a
  duplicate's wrong copy and a mismatched or drifted desired set get their desired set
  re-sent (the worker reconciles level-triggered and stops what it should not run), a log
  finding is acknowledged. Each gets a ``ConsistencyDivergenceFound`` and a
  ``ConsistencyDivergenceRepaired`` whose ``action`` says what was done; no table is edited.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from control_plane.decide.checker.report import LOG_VIEW, ConsistencyReport, Divergence
from control_plane.decide.checker.report import DivergenceKind as K
from control_plane.decide.consistency import emit_found, emit_repaired
from control_plane.decide.context import Ctx
from control_plane.decide.liveness import LivenessView
from control_plane.decide.placement import place
from events import control as ev
from events.commands import MAX_REPORTED_DIVERGENCES, ReportedDivergence
from events.ids import ID_PATTERN
from projections.fold.state import GONE_STATUSES

#: the ``action`` of a log finding's acknowledgement, followed by the refused event's id
ACK_PREFIX = "acknowledged event "
#: the projections the checker's shell rebuilds or republishes itself
SHELL_VIEWS = frozenset({"read_model", "assignments"})
#: the projections whose owner process repairs them on an event of the log: the Faust
#: projector writes a drifted table entry again (``events.control.PROJECTOR_REWRITE``)
LOGGED_VIEWS = frozenset({"faust_tables"})


class RepairPlan(NamedTuple):
    """``rebuild``: projections the shell puts right from the log; ``send``: the
    divergences for the orchestrator (at most one command's worth; ``left`` did not fit)."""

    rebuild: frozenset[str]
    send: tuple[Divergence, ...]
    left: int


def plan_repairs(report: ConsistencyReport) -> RepairPlan:
    """What to do about ``report`` (see the module docstring)."""
    rebuild = frozenset(
        d.view for d in report.divergences if d.kind is K.PROJECTION_DRIFT and d.view in SHELL_VIEWS
    )
    send = [
        d for d in report.divergences if d.kind is not K.PROJECTION_DRIFT or d.view in LOGGED_VIEWS
    ]
    kept = send[:MAX_REPORTED_DIVERGENCES]
    return RepairPlan(rebuild, tuple(kept), len(send) - len(kept))


def to_command(
    divergences: Iterable[Divergence], *, actions: dict[str, str]
) -> tuple[ReportedDivergence, ...]:
    """The command's items; ``actions``: view -> what the shell already did there."""
    return tuple(
        ReportedDivergence(
            kind=d.kind.value,
            view=d.view,
            stream_id=_id_or_none(d.stream_id),
            server_id=_id_or_none(d.server_id),
            key=None if d.key is None else d.key[:256],
            detail=d.detail[:512],
            action=actions.get(d.view, ""),
        )
        for d in divergences
    )


def _id_or_none(value: str | None) -> str | None:
    """An id as the contract allows it, else None: a row a hand edit gave a key no id may
    have is still reported, by its ``key``."""
    if value is None or len(value) > 128 or not re.fullmatch(ID_PATTERN, value):
        return None
    return value


def acknowledged_id(action: str) -> str | None:
    """The refused event's id an acknowledgement's ``action`` names, else None."""
    if not action.startswith(ACK_PREFIX):
        return None
    return action[len(ACK_PREFIX) :].split(":", 1)[0].strip() or None


def repair_reported(
    ctx: Ctx,
    liveness: LivenessView,
    items: Sequence[ReportedDivergence],
    *,
    causation: str | None,
) -> int:
    """Repair what ``streamplane check`` reported (see the module docstring); returns how
    many were repaired (the others' ``action`` says why not)."""
    check_id = ctx.new_id()
    repaired = 0
    silent = _silent(ctx, liveness)
    for d in items:
        emit_found(ctx, d, check_id=check_id, causation=causation)
        action, done = _repair_one(ctx, silent, d)
        repaired += done
        emit_repaired(ctx, d, action, check_id=check_id, causation=causation)
    return repaired


def _silent(ctx: Ctx, liveness: LivenessView) -> tuple[str, ...]:
    """Instances not gone that this process has not heard for ``fail_after`` either: the
    checker's claim that they orphaned their streams holds here too, and nothing is placed
    on them."""
    out = []
    for inst in ctx.state.instances.values():
        if inst.status in GONE_STATUSES:
            continue
        quiet = liveness.silence(inst.server_id, inst.incarnation, inst.registered_at, ctx.now)
        if quiet >= ctx.config.fail_after:
            out.append(inst.server_id)
    return tuple(sorted(out))


def _repair_one(ctx: Ctx, silent: tuple[str, ...], d: ReportedDivergence) -> tuple[str, bool]:
    if d.view == LOG_VIEW:
        return f"{ACK_PREFIX}{d.key}: the fold refused or noted it; the log is append-only", True
    if d.action:  # the shell rebuilt it
        return d.action, True
    if d.kind == K.PROJECTION_DRIFT and d.view in LOGGED_VIEWS:
        if not d.stream_id and not d.server_id:
            return "not repaired: no stream or server id to write again", False
        return ev.PROJECTOR_REWRITE, True
    if d.kind == K.ORPHANED and d.stream_id:
        return _replace_orphan(ctx, silent, d.stream_id)
    if d.kind in (K.DUPLICATED, K.WORKER_MISMATCH, K.DESIRED_DRIFT) and d.server_id:
        if d.server_id not in ctx.state.instances:
            return f"not repaired: {d.server_id!r} is unknown to the log", False
        ctx.republish.add(d.server_id)
        return f"desired set of {d.server_id!r} re-sent; the worker reconciles to it", True
    return "not repaired: no repair by events for this kind; see docs/consistency.md", False


def _replace_orphan(ctx: Ctx, silent: tuple[str, ...], stream_id: str) -> tuple[str, bool]:
    """Place an orphan again (never on a ``silent`` instance): off an owner that is gone,
    or silent as far as this process can tell too; a waiting stream where there is room."""
    s = ctx.state.streams.get(stream_id)
    if s is None:
        return f"not repaired: no stream {stream_id!r}", False
    owner = ctx.state.instances.get(s.server_id) if s.server_id else None
    if owner is not None and owner.status not in GONE_STATUSES:
        if owner.incarnation == s.incarnation and owner.server_id not in silent:
            return f"not repaired: owner {owner.server_id!r} is heard", False
        if s.migration_state is not None:
            return f"not repaired: {stream_id!r} is migrating", False
        ctx.emit(
            ev.StreamUnassigned,
            stream_id=stream_id,
            server_id=s.server_id,
            reason=ev.Reasons.CONSISTENCY_REPAIR,
        )
    place(ctx, [stream_id], ev.Reasons.CONSISTENCY_REPAIR, exclude=silent)
    now = ctx.state.streams[stream_id]
    if now.server_id is None:
        return "unassigned from its silent owner; waits for capacity", True
    return f"placed again on {now.server_id!r}", True


__all__ = [
    "ACK_PREFIX",
    "LOGGED_VIEWS",
    "SHELL_VIEWS",
    "RepairPlan",
    "acknowledged_id",
    "plan_repairs",
    "repair_reported",
    "to_command",
]
