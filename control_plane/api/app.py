"""The FastAPI application: the routers of this package, the one error shape, ``/metrics``
on the same port (the database pool's figures too), and the dashboard's router (it owns
``/``; the API's own routes leave the root free for it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from control_plane.api import alerts, commands, consistency, history, reads
from control_plane.api.auth import AUTH_ERRORS, ReadAccess, authenticator
from control_plane.api.context import ApiContext
from control_plane.api.dashboard import router as dashboard_router
from control_plane.api.errors import install_error_handlers
from control_plane.api.metrics import ApiMetrics, RequestMetrics, metrics_route
from control_plane.api.settings import ApiSettings
from projections.io.db_metrics import watch_database
from projections.io.postgres import ResilientDatabaseManager
from telemetry.metrics import LoopLag, process_registry

DASHBOARD = "control_plane.api.dashboard"
DESCRIPTION = """\
The control plane's HTTP API: reads from the PostgreSQL read model (each answer says the
control-log seq it is as of, in `as_of_seq` and the `X-Streamplane-Seq` header), time travel
by replaying the control log, and commands sent to the orchestrator. Every 4xx/5xx answer is
one JSON shape: `{"error", "message", "field"?, "reason"?, "command_id"?, "as_of_seq"?}`.
Authentication: `Authorization: Bearer <token>`; a token has the scope `read`, `operate`
or `admin` (each includes the ones before it): 401 without a token or with an unknown one,
403 when its scope is too small (docs/api.md, "Authentication")."""


def _include_dashboard(app: FastAPI, settings: ApiSettings) -> None:
    """Include the dashboard's routes; ``app.state.dashboard`` keeps them, so that the
    server ends the pages' streams first when it stops (:class:`~.server.ApiServer`)."""
    routes = dashboard_router(
        settings, settings.dashboard, dependencies=[ReadAccess], responses=AUTH_ERRORS
    )
    app.state.dashboard = routes
    app.include_router(routes)


def _openapi_without_422(app: FastAPI) -> None:
    """FastAPI documents its validation errors as 422 ``HTTPValidationError``; this API
    answers them 400 with :class:`~control_plane.api.errors.ErrorBody`, so the document
    must not promise the other shape."""
    make = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = make()
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    operation.get("responses", {}).pop("422", None)
            schemas = schema.get("components", {}).get("schemas", {})
            for name in ("HTTPValidationError", "ValidationError"):
                schemas.pop(name, None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def create_app(
    settings: ApiSettings,
    *,
    db: ResilientDatabaseManager | None = None,
    registry: CollectorRegistry | None = None,
    watch_db: bool = True,
) -> FastAPI:
    """The ASGI app. Its lifespan samples event-loop lag and, at shutdown, closes ``db``
    (made from ``settings`` if not given); ``registry`` defaults to a new per-process one.
    ``watch_db`` exports ``db``'s pool, retries and breaker (``streamplane_db_*``); a
    process that composes the API with a read model exports the read model's instead."""
    db = db or ResilientDatabaseManager(
        settings.database_url,
        schema=settings.database_schema,
        settings=settings.database,
        application_name="streamplane-api",
    )
    ctx = ApiContext(settings, db, registry or process_registry())
    loop_lag = LoopLag(ctx.registry)
    if watch_db:
        watch_database(db, ctx.registry)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.auth.announce()
        sampler = asyncio.create_task(loop_lag.run(), name="api:loop-lag")
        try:
            yield
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
            await ctx.close()

    app = FastAPI(title="streamplane API", version="1", description=DESCRIPTION, lifespan=lifespan)
    app.state.api = ctx
    app.state.auth = authenticator(
        settings.api_tokens_file, settings.api_anonymous_reads, settings.api_host
    )
    install_error_handlers(app)
    for module in (reads, alerts, history, commands, consistency):
        app.include_router(module.router)
    app.router.routes.append(metrics_route(ctx.registry))
    _include_dashboard(app, settings)
    _openapi_without_422(app)
    app.add_middleware(RequestMetrics, metrics=ApiMetrics(ctx.registry))
    return app
