"""Reads from the PostgreSQL read model: health, instances, streams (paged), one stream and
its history (with the failure that moved it), migrations in flight, projection lag.

Every answer is one read-only repeatable-read transaction and says the control-log seq it
is as of (``as_of_seq`` and the X-Streamplane-Seq header).
"""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from fastapi import APIRouter, Depends, Path, Query, Response

from control_plane.api import queries
from control_plane.api.auth import AUTH_ERRORS, ReadAccess
from control_plane.api.context import ApiContext, BoundedRoute, as_of, context
from control_plane.api.errors import ERRORS, NOT_FOUND, NotFoundError
from control_plane.api.models import (
    HealthResponse,
    HistoryResponse,
    InstanceResponse,
    InstancesResponse,
    LagResponse,
    MigrationsPage,
    StreamResponse,
    StreamsPage,
)
from control_plane.api.settings import MAX_LIMIT, MAX_OFFSET
from events.ids import ID_PATTERN
from projections.fold.rows import health_data
from projections.fold.state import AssignmentStatus, ClusterState, InstanceStatus
from projections.io.kafka import end_offsets

Ctx = Annotated[ApiContext, Depends(context)]
StreamIdPath = Annotated[str, Path(pattern=ID_PATTERN, max_length=128, description="a stream id")]
ServerIdPath = Annotated[
    str, Path(pattern=ID_PATTERN, max_length=128, description="an instance's server id")
]
Limit = Annotated[
    int | None,
    Query(ge=1, le=MAX_LIMIT, description=f"page size, 1..{MAX_LIMIT} (default: a setting)"),
]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="rows to skip")]
ServerFilter = Annotated[
    str | None, Query(pattern=ID_PATTERN, max_length=128, description="only this server's")
]
StreamFilter = Annotated[
    str | None, Query(pattern=ID_PATTERN, max_length=128, description="only this stream's")
]

router = APIRouter(
    route_class=BoundedRoute,
    tags=["reads"],
    responses={**ERRORS, **AUTH_ERRORS},
    dependencies=[ReadAccess],
)


def _next(offset: int, got: int, limit: int) -> int | None:
    return offset + got if got == limit else None


@router.get("/health", response_model=HealthResponse)
async def health(ctx: Ctx, response: Response) -> HealthResponse:
    """SystemHealth of the read model, the leader and its epoch, maintenance mode."""
    row = await ctx.read(lambda c: queries.cluster_row(c, ctx.settings.read_model_name))
    if row is None:  # nothing projected yet: the empty state
        return HealthResponse(as_of_seq=as_of(response, 0), health=health_data(ClusterState()))
    return HealthResponse(
        as_of_seq=as_of(response, int(row["seq"])),
        health=row["health"],
        epoch=row["epoch"],
        leader_id=row["leader_id"],
        maintenance=row["maintenance"],
        finding_count=row["finding_count"],
        last_event_time=row["last_event_time"],
    )


@router.get("/instances", response_model=InstancesResponse)
async def list_instances(
    ctx: Ctx, response: Response, status: InstanceStatus | None = None
) -> InstancesResponse:
    """Every instance (``?status=`` filters), sorted by server id."""

    async def query(conn: asyncpg.Connection) -> tuple[int, list[Any]]:
        return await ctx.seq(conn), await queries.instances(conn, status)

    seq, rows = await ctx.read(query)
    return InstancesResponse(as_of_seq=as_of(response, seq), instances=rows)


@router.get("/instances/{server_id}", response_model=InstanceResponse, responses=NOT_FOUND)
async def one_instance(ctx: Ctx, response: Response, server_id: ServerIdPath) -> InstanceResponse:
    """One instance and the streams it owns."""

    async def query(conn: asyncpg.Connection) -> tuple[int, Any, list[Any]]:
        row = await queries.instance(conn, server_id)
        owned = await queries.streams(conn, None, server_id, MAX_LIMIT, 0)
        return await ctx.seq(conn), row, owned[0]

    seq, row, owned = await ctx.read(query)
    if row is None:
        raise NotFoundError(f"no instance {server_id!r}", field="server_id", seq=seq)
    return InstanceResponse(as_of_seq=as_of(response, seq), instance=row, streams=owned)


@router.get("/streams", response_model=StreamsPage)
async def list_streams(
    ctx: Ctx,
    response: Response,
    status: AssignmentStatus | None = None,
    server_id: ServerFilter = None,
    limit: Limit = None,
    offset: Offset = 0,
) -> StreamsPage:
    """Streams sorted by id, one page at a time (``limit``/``offset``; ``next_offset``)."""
    size = limit or ctx.settings.api_default_limit

    async def query(conn: asyncpg.Connection) -> tuple[int, list[Any], int]:
        rows, total = await queries.streams(conn, status, server_id, size, offset)
        return await ctx.seq(conn), rows, total

    seq, rows, total = await ctx.read(query)
    return StreamsPage(
        as_of_seq=as_of(response, seq),
        streams=rows,
        limit=size,
        offset=offset,
        total=total,
        next_offset=offset + len(rows) if offset + len(rows) < total else None,
    )


def _stream_view(row: dict[str, Any]) -> dict[str, Any]:
    data = dict(row["data"])
    data["params"] = dict(data.get("params") or ())  # the fold keeps (key, value) pairs
    return {**data, "migration": row["migration"], "reason": row["reason"]}


@router.get("/streams/{stream_id}", response_model=StreamResponse, responses=NOT_FOUND)
async def one_stream(ctx: Ctx, response: Response, stream_id: StreamIdPath) -> StreamResponse:
    """One stream, every field, and the InstanceFailed that last moved it (if any)."""

    async def query(conn: asyncpg.Connection) -> tuple[int, Any, list[Any]]:
        row = await queries.stream(conn, stream_id)
        failures = await queries.owner_failures(conn, stream_id) if row else []
        return await ctx.seq(conn), row, failures

    seq, row, failures = await ctx.read(query)
    if row is None:
        raise NotFoundError(f"no stream {stream_id!r}", field="stream_id", seq=seq)
    return StreamResponse(
        as_of_seq=as_of(response, seq),
        stream=_stream_view(row),
        changed_at_seq=row["as_of_seq"],
        owner_failure=failures[-1] if failures else None,
    )


@router.get("/streams/{stream_id}/history", response_model=HistoryResponse, responses=NOT_FOUND)
async def stream_history(
    ctx: Ctx,
    response: Response,
    stream_id: StreamIdPath,
    limit: Limit = None,
    offset: Offset = 0,
) -> HistoryResponse:
    """The events about a stream in log order (paged), its migrations and each failure of
    an instance that moved it."""
    size = limit or ctx.settings.api_default_limit

    async def query(conn: asyncpg.Connection) -> tuple[int, list[Any], list[Any], list[Any]]:
        events = await queries.stream_events(conn, stream_id, size, offset)
        migrations = await queries.stream_migrations(conn, stream_id, MAX_LIMIT)
        failures = await queries.owner_failures(conn, stream_id)
        return await ctx.seq(conn), events, migrations, failures

    seq, events, migrations, failures = await ctx.read(query)
    if not events and offset == 0:
        raise NotFoundError(f"no event about stream {stream_id!r}", field="stream_id", seq=seq)
    return HistoryResponse(
        as_of_seq=as_of(response, seq),
        stream_id=stream_id,
        events=events,
        migrations=migrations,
        owner_failures=failures,
        limit=size,
        offset=offset,
        next_offset=_next(offset, len(events), size),
    )


@router.get("/migrations", response_model=MigrationsPage)
async def migrations(
    ctx: Ctx,
    response: Response,
    stream_id: StreamFilter = None,
    server_id: ServerFilter = None,
    limit: Limit = None,
    offset: Offset = 0,
) -> MigrationsPage:
    """Migrations in flight (``server_id`` matches the source or the target), oldest first."""
    size = limit or ctx.settings.api_default_limit

    async def query(conn: asyncpg.Connection) -> tuple[int, list[Any]]:
        rows = await queries.migrations_in_flight(conn, stream_id, server_id, size, offset)
        return await ctx.seq(conn), rows

    seq, rows = await ctx.read(query)
    return MigrationsPage(
        as_of_seq=as_of(response, seq),
        migrations=rows,
        limit=size,
        offset=offset,
        next_offset=_next(offset, len(rows), size),
    )


@router.get("/lag", response_model=LagResponse)
async def lag(ctx: Ctx, response: Response) -> LagResponse:
    """How far the read model is behind: its tracking row against the control log's end."""
    name = ctx.settings.read_model_name

    async def query(conn: asyncpg.Connection) -> Any:
        return await queries.tracking(conn, name)

    row = await ctx.read(query) or {"next_offset": 0, "last_seq": 0, "updated_at": None}
    ends = await end_offsets(
        ctx.settings.kafka_access,
        ctx.topics.events,
        kafka_timeout=ctx.settings.api_kafka_timeout,
    )
    end = ends.get(0, 0)
    return LagResponse(
        as_of_seq=as_of(response, int(row["last_seq"])),
        read_model=name,
        next_offset=row["next_offset"],
        log_end_offset=end,
        lag_records=max(0, end - int(row["next_offset"])),
        updated_at=row["updated_at"],
    )
