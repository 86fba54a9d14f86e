"""What every route shares: the settings, one database manager, the topic names, the
metrics registry; the request bound; and the seq header.

The context lives on ``app.state.api`` and reaches a handler through the :func:`context`
dependency, so routes stay plain functions of their parameters.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg
from fastapi import Request, Response
from fastapi.routing import APIRoute
from prometheus_client import CollectorRegistry

from control_plane.api.errors import SEQ_HEADER
from control_plane.api.settings import ApiSettings
from events.topics import Topics
from projections.io.postgres import ResilientDatabaseManager
from telemetry.metrics import process_registry

T = TypeVar("T")


@dataclass
class ApiContext:
    """The API's resources; :meth:`close` releases them (the app's lifespan calls it)."""

    settings: ApiSettings
    db: ResilientDatabaseManager
    registry: CollectorRegistry = field(default_factory=process_registry)

    @property
    def topics(self) -> Topics:
        return Topics(self.settings.topic_prefix)

    async def read(self, query: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """Run ``query`` in one read-only repeatable-read transaction: one consistent
        snapshot of the read model per answer."""
        return await self.db.execute_with_retry(
            query, what="API read", isolation="repeatable_read", readonly=True
        )

    async def seq(self, conn: asyncpg.Connection) -> int:
        """The read model's seq (0 before anything was projected)."""
        sql = "SELECT seq FROM cluster WHERE projection = $1"
        value = await conn.fetchval(sql, self.settings.read_model_name)
        return int(value or 0)

    async def close(self) -> None:
        await self.db.close()


def context(request: Request) -> ApiContext:
    """FastAPI dependency: the app's :class:`ApiContext`."""
    ctx: ApiContext = request.app.state.api
    return ctx


def as_of(response: Response, seq: int) -> int:
    """Put ``seq`` in the X-Streamplane-Seq header; returns it for the body."""
    response.headers[SEQ_HEADER] = str(seq)
    return seq


class BoundedRoute(APIRoute):
    """A route whose whole handling (parsing, the handler, serialising) is bounded by
    ``api_request_timeout``; over it, the TimeoutError becomes a 504 (errors.py). Only the
    API's own routes use it: a live feed of the dashboard must not be cut by it."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def bounded(request: Request) -> Response:
            bound = context(request).settings.api_request_timeout
            async with asyncio.timeout(bound):
                return await handler(request)

        return bounded
