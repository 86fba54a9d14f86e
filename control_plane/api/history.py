"""Time travel: the state the control log described at a time or once a seq was reached
(or now),
folded from the log (``projections.io.history.state_at``, from a snapshot when one lies
before that point), not from the read model."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from control_plane.api.auth import AUTH_ERRORS, ReadAccess
from control_plane.api.context import ApiContext, BoundedRoute, as_of, context
from control_plane.api.errors import ERRORS, BadRequestError
from control_plane.api.models import StateResponse
from control_plane.api.settings import MAX_SEQ
from projections.fold.assignments import assignment_value, instance_value
from projections.fold.rows import health_data
from projections.io.history import state_at

Ctx = Annotated[ApiContext, Depends(context)]
router = APIRouter(
    route_class=BoundedRoute,
    tags=["time travel"],
    responses={**ERRORS, **AUTH_ERRORS},
    dependencies=[ReadAccess],
)


def _utc(text: str) -> datetime:
    """An ISO 8601 time with a timezone, in UTC. Parsed here rather than by pydantic, which
    would also take a number as seconds since 1970: the document promises a date-time."""
    try:
        at = datetime.fromisoformat(text.upper())  # RFC 3339 allows a lowercase t and z
    except ValueError:
        raise BadRequestError(
            f"at: {text!r:.60} is not an ISO 8601 time (e.g. 2026-11-28T03:12:00Z)", field="at"
        ) from None
    if at.tzinfo is None:
        raise BadRequestError(
            f"at: {at.isoformat()} has no timezone (e.g. 2026-11-28T03:12:00Z)", field="at"
        )
    try:
        return at.astimezone(UTC)
    except (OverflowError, ValueError) as exc:
        raise BadRequestError(f"at: {at.isoformat()} is out of range ({exc})", field="at") from exc


@router.get("/state", response_model=StateResponse)
async def state(
    ctx: Ctx,
    response: Response,
    at: Annotated[
        str | None,
        Query(
            description="ISO 8601 time with a timezone: the state after the last event then",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    seq: Annotated[
        int | None, Query(ge=0, le=MAX_SEQ, description="the state once this seq was reached")
    ] = None,
) -> StateResponse:
    """Instances, streams and health as the log described them at ``at`` or at ``seq``
    (at most one of the two; neither: now, the whole log): a replay of the control log,
    bounded by api_replay_timeout."""
    if at is not None and seq is not None:
        raise BadRequestError("give ?at= or ?seq=, not both", field="seq")
    when = _utc(at) if at is not None else None
    s = ctx.settings
    async with asyncio.timeout(s.api_replay_timeout):
        folded = await state_at(s.kafka_access, ctx.topics, at=when, seq=seq)
    instances = [instance_value(i, seq=folded.seq) for _, i in sorted(folded.instances.items())]
    streams = [
        assignment_value(
            st, seq=folded.seq, epoch=folded.epoch, time=folded.last_event_time, reason="replay"
        )
        for _, st in sorted(folded.streams.items())
    ]
    return StateResponse(
        as_of_seq=as_of(response, folded.seq),
        at=when,
        seq=seq,
        health=health_data(folded),
        instances=instances,
        streams=streams,
    )
