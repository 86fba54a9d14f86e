"""The HTTP API (aiohttp): reads from the PostgreSQL read model, time travel by replaying
the control log, and commands sent to the orchestrator.

Every response is JSON (orjson) and says the control-log ``seq`` it is as of, in the body
(``as_of_seq``) and in the ``X-Streamplane-Seq`` header. Reads run in one read-only
repeatable-read transaction, so a response is one consistent snapshot of the read model.

====================================  ======================================================
``GET /health``                       SystemHealth of the read model
``GET /instances``                    every instance
``GET /streams``                      streams (``?status=``, ``?server_id=``, ``?limit=``)
``GET /streams/{id}``                 one stream, every field
``GET /streams/{id}/history``         the events that moved it (reason, causationid, ...)
``GET /state?at=ISO_TIME``            the state the log described at that time (replay)
``POST /streams``                     register (body: stream_id, weight, priority, ...)
``DELETE /streams/{id}``              deregister
``POST /instances/{id}/drain``        drain
``POST /rebalance?dry_run=true``      ask for a rebalance (dry run by default)
====================================  ======================================================

Commands answer 200 with the outcome event and the events it caused, 409 when the
orchestrator rejected the command, 504 when no orchestrator answered in time, 400 on a bad
request. An unreachable database or Kafka is 503. Every handler is bounded by
``api_request_timeout``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import asyncpg
import orjson
from aiohttp import web
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from control_plane.client import send_command
from control_plane.errors import CommandRejectedError, CommandTimeoutError
from events import commands as cmd
from events.codec import to_wire
from events.topics import DEFAULT_BOOTSTRAP, DEFAULT_PREFIX, Topics
from projections.errors import ProjectionError
from projections.fold.assignments import assignment_value, instance_value
from projections.fold.rows import health_data
from projections.fold.state import ClusterState
from projections.io.postgres import DatabaseError, DatabaseSettings, ResilientDatabaseManager
from projections.io.read_store import ReadModelSettings
from projections.io.replay import ReplaySettings, replay

log = logging.getLogger(__name__)

SEQ_HEADER = "X-Streamplane-Seq"
MAX_LIMIT = 10_000
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiSettings(BaseSettings):
    """The API process (env prefix ``STREAMPLANE_``)."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_", frozen=True, extra="ignore")

    kafka_bootstrap: str = DEFAULT_BOOTSTRAP
    topic_prefix: str = DEFAULT_PREFIX
    database_url: str = "postgresql://postgres@127.0.0.1:15432/streamplane"
    database_schema: str = "public"
    read_model_name: str = "read_model"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8080, ge=0, le=65535)
    #: bound of any one request, seconds
    api_request_timeout: float = Field(default=60.0, gt=0)
    #: how long a command waits for the orchestrator's answer (below the request bound)
    api_command_wait: float = Field(default=30.0, gt=0)
    #: bound of a time-travel replay, seconds
    api_replay_timeout: float = Field(default=50.0, gt=0)
    api_default_limit: int = Field(default=1000, ge=1, le=MAX_LIMIT)
    database: DatabaseSettings = DatabaseSettings()

    def read_model_settings(self) -> ReadModelSettings:
        """The settings of a read-model projector on the same database and topics."""
        return ReadModelSettings(
            kafka_bootstrap=self.kafka_bootstrap,
            topic_prefix=self.topic_prefix,
            database_url=self.database_url,
            database_schema=self.database_schema,
            read_model_name=self.read_model_name,
            database=self.database,
        )


def _dumps(data: Any) -> bytes:
    return orjson.dumps(data, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS)


def respond(data: dict[str, Any], *, seq: int, status: int = 200) -> web.Response:
    """A JSON response saying the ``seq`` it is as of."""
    body = {"as_of_seq": seq, **data}
    return web.Response(
        body=_dumps(body),
        status=status,
        content_type="application/json",
        headers={SEQ_HEADER: str(seq)},
    )


def _error(status: int, error: str, detail: str, seq: int = 0) -> web.Response:
    return respond({"error": error, "detail": detail}, seq=seq, status=status)


class Api:
    """The handlers, over one database manager."""

    def __init__(self, settings: ApiSettings, db: ResilientDatabaseManager) -> None:
        self.settings = settings
        self.db = db
        self.topics = Topics(settings.topic_prefix)

    async def _read(self, query: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        return await self.db.execute_with_retry(
            query, what="API read", isolation="repeatable_read", readonly=True
        )

    async def _seq(self, conn: asyncpg.Connection) -> int:
        name = self.settings.read_model_name
        seq = await conn.fetchval("SELECT seq FROM cluster WHERE projection = $1", name)
        return int(seq or 0)

    # --- reads ----------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        async def query(conn: asyncpg.Connection) -> Any:
            sql = "SELECT * FROM cluster WHERE projection = $1"
            return await conn.fetchrow(sql, self.settings.read_model_name)

        row = await self._read(query)
        if row is None:  # nothing projected yet: the empty state
            return respond({"health": health_data(ClusterState())}, seq=0)
        data = {k: row[k] for k in ("epoch", "leader_id", "maintenance", "finding_count")}
        data["last_event_time"] = row["last_event_time"]
        return respond({"health": row["health"], **data}, seq=int(row["seq"]))

    async def instances(self, request: web.Request) -> web.Response:
        async def query(conn: asyncpg.Connection) -> tuple[int, list[Any]]:
            rows = await conn.fetch("SELECT data FROM instances ORDER BY server_id")
            return await self._seq(conn), [r["data"] for r in rows]

        seq, rows = await self._read(query)
        return respond({"instances": rows}, seq=seq)

    async def streams(self, request: web.Request) -> web.Response:
        q = request.query
        try:
            limit = min(int(q.get("limit", self.settings.api_default_limit)), MAX_LIMIT)
            offset = max(int(q.get("offset", 0)), 0)
        except ValueError:
            return _error(400, "bad_request", "limit and offset must be integers")
        sql = (
            "SELECT stream_id, server_id, incarnation, status, weight, priority, assigned_at,"
            " migration, reason, as_of_seq FROM streams"
            " WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR server_id = $2)"
            " ORDER BY stream_id LIMIT $3 OFFSET $4"
        )

        async def query(conn: asyncpg.Connection) -> tuple[int, list[Any]]:
            rows = await conn.fetch(sql, q.get("status"), q.get("server_id"), limit, offset)
            return await self._seq(conn), [dict(r) for r in rows]

        seq, rows = await self._read(query)
        return respond({"streams": rows, "limit": limit, "offset": offset}, seq=seq)

    async def stream(self, request: web.Request) -> web.Response:
        sid = request.match_info["stream_id"]

        async def query(conn: asyncpg.Connection) -> tuple[int, Any]:
            sql = "SELECT data, migration, reason, as_of_seq FROM streams WHERE stream_id = $1"
            return await self._seq(conn), await conn.fetchrow(sql, sid)

        seq, row = await self._read(query)
        if row is None:
            return _error(404, "not_found", f"no stream {sid!r}", seq)
        stream = {**row["data"], "migration": row["migration"], "reason": row["reason"]}
        return respond({"stream": stream, "changed_at_seq": row["as_of_seq"]}, seq=seq)

    async def history(self, request: web.Request) -> web.Response:
        sid = request.match_info["stream_id"]
        events_sql = (
            "SELECT seq, epoch, id, type, time, reason, causationid, correlationid, finding,"
            " data FROM events WHERE subject = $1 ORDER BY log_offset"
        )
        migrations_sql = "SELECT * FROM migrations WHERE stream_id = $1 ORDER BY started_seq"

        async def query(conn: asyncpg.Connection) -> tuple[int, list[Any], list[Any]]:
            events = [dict(r) for r in await conn.fetch(events_sql, sid)]
            migrations = [dict(r) for r in await conn.fetch(migrations_sql, sid)]
            return await self._seq(conn), events, migrations

        seq, events, migrations = await self._read(query)
        if not events:
            return _error(404, "not_found", f"no event about stream {sid!r}", seq)
        return respond({"stream_id": sid, "events": events, "migrations": migrations}, seq=seq)

    async def state_at(self, request: web.Request) -> web.Response:
        raw = request.query.get("at")
        try:
            at = datetime.fromisoformat(raw.replace("Z", "+00:00")) if raw else None
        except ValueError:
            at = None
        if at is None or at.tzinfo is None:
            return _error(400, "bad_request", "?at= must be an ISO 8601 time with a timezone")
        cfg = ReplaySettings(kafka_timeout=min(30.0, self.settings.api_replay_timeout))
        async with asyncio.timeout(self.settings.api_replay_timeout):
            result = await replay(
                self.settings.kafka_bootstrap, self.topics.events, until_time=at, settings=cfg
            )
        state = result.state
        instances = [instance_value(i, seq=state.seq) for _, i in sorted(state.instances.items())]
        streams = [
            assignment_value(
                s, seq=state.seq, epoch=state.epoch, time=state.last_event_time, reason="replay"
            )
            for _, s in sorted(state.streams.items())
        ]
        data = {
            "at": at,
            "events": result.events,
            "health": health_data(state),
            "instances": instances,
            "streams": streams,
        }
        return respond(data, seq=state.seq)

    # --- commands -------------------------------------------------------------------

    async def _command(self, build: Any, **fields: Any) -> web.Response:
        s = self.settings
        try:
            done, caused = await send_command(
                s.kafka_bootstrap,
                self.topics,
                build,
                wait_s=s.api_command_wait,
                source="streamplane/api",
                **fields,
            )
        except ValidationError as exc:
            return _error(400, "bad_request", str(exc.errors()[0]["msg"]))
        except CommandRejectedError as exc:
            data = {"error": "rejected", "reason": exc.reason, "detail": exc.detail}
            return respond(data, seq=0, status=409)
        except CommandTimeoutError as exc:
            return _error(504, "no_answer", str(exc))
        body = {"outcome": to_wire(done), "events": [to_wire(e) for e in caused]}
        return respond(body, seq=done.seq)

    async def register_stream(self, request: web.Request) -> web.Response:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return _error(400, "bad_request", "the body must be a JSON object")
        if not isinstance(body, dict) or not isinstance(body.get("stream_id"), str):
            return _error(400, "bad_request", "the body must be a JSON object with stream_id")
        allowed = {"stream_id", "weight", "priority", "zone", "anti_affinity", "params"}
        if unknown := sorted(set(body) - allowed):
            return _error(400, "bad_request", f"unknown field(s) {unknown}")
        return await self._command(cmd.RegisterStream, **body)

    async def deregister_stream(self, request: web.Request) -> web.Response:
        return await self._command(cmd.DeregisterStream, stream_id=request.match_info["stream_id"])

    async def drain(self, request: web.Request) -> web.Response:
        return await self._command(cmd.DrainInstance, server_id=request.match_info["server_id"])

    async def rebalance(self, request: web.Request) -> web.Response:
        dry_run = request.query.get("dry_run", "true").lower() not in ("false", "0", "no")
        return await self._command(cmd.RequestRebalance, dry_run=dry_run)


def _guard(timeout: float) -> Any:
    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            async with asyncio.timeout(timeout):
                return await handler(request)
        except TimeoutError:
            return _error(504, "timeout", f"no answer within {timeout:.0f}s")
        except DatabaseError as exc:
            log.warning("API %s %s: %s", request.method, request.path, exc)
            return _error(503 if exc.retriable else 500, "database", str(exc))
        except ProjectionError as exc:  # Kafka (time travel)
            return _error(503 if exc.retriable else 500, "kafka", str(exc))

    return guard


def create_app(
    settings: ApiSettings, *, db: ResilientDatabaseManager | None = None
) -> web.Application:
    """The aiohttp application; it closes ``db`` (made from ``settings`` if not given) on
    cleanup."""
    db = db or ResilientDatabaseManager(
        settings.database_url,
        schema=settings.database_schema,
        settings=settings.database,
        application_name="streamplane-api",
    )
    api = Api(settings, db)
    app = web.Application(middlewares=[_guard(settings.api_request_timeout)])
    app.router.add_get("/health", api.health)
    app.router.add_get("/instances", api.instances)
    app.router.add_get("/streams", api.streams)
    app.router.add_post("/streams", api.register_stream)
    app.router.add_get("/streams/{stream_id}", api.stream)
    app.router.add_delete("/streams/{stream_id}", api.deregister_stream)
    app.router.add_get("/streams/{stream_id}/history", api.history)
    app.router.add_get("/state", api.state_at)
    app.router.add_post("/instances/{server_id}/drain", api.drain)
    app.router.add_post("/rebalance", api.rebalance)

    async def close_db(_: web.Application) -> None:
        await db.close()

    app.on_cleanup.append(close_db)
    return app


__all__ = ["SEQ_HEADER", "Api", "ApiSettings", "create_app", "respond"]
