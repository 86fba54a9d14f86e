"""The dashboard served alone: ``python -m control_plane.api.dashboard``.

The dashboard is fed from the control log only; the API's reads need PostgreSQL and a read
model. Where neither runs (``streamplane demo`` on a machine without PostgreSQL), this
serves the page, its stream and ``/metrics`` with uvicorn and nothing else. Settings come
from the environment (:class:`DashboardServerSettings`); ``--host``, ``--port``,
``--bootstrap`` and ``--topic-prefix`` win. Once listening it prints one line,
``dashboard: http://HOST:PORT/`` (with the real port when asked for port 0).

On SIGTERM or SIGINT every open page's stream is ended first, so that the server does not
wait out ``api_shutdown_grace`` for pages that would never hang up.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
from collections.abc import Sequence
from types import FrameType

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from control_plane.api.auth import AuthConfigError, ReadAccess, authenticator
from control_plane.api.dashboard import router
from control_plane.api.dashboard.routes import DashboardRouter
from control_plane.api.dashboard.settings import DashboardServerSettings
from control_plane.api.errors import install_error_handlers
from telemetry.logs import setup_logging
from telemetry.metrics import LoopLag, asgi_app, process_registry


def create_app(settings: DashboardServerSettings) -> tuple[FastAPI, DashboardRouter]:
    """The app: the dashboard's routes and ``/metrics`` (process figures, loop lag); the
    data behind the API's tokens (``read``), as in the API (control_plane.api.auth)."""
    routes = router(settings, settings.dashboard, dependencies=[ReadAccess])
    registry = process_registry()
    lag = LoopLag(registry)
    app = FastAPI(title="streamplane dashboard", docs_url=None, redoc_url=None)
    app.state.auth = authenticator(
        settings.api_tokens_file, settings.api_anonymous_reads, settings.api_host
    )
    install_error_handlers(app)
    app.include_router(routes)
    app.mount("/metrics", asgi_app(registry))
    app.state.loop_lag = lag
    return app, routes


class _Server(uvicorn.Server):
    """uvicorn, ending the pages' streams before it waits for open connections."""

    def __init__(self, config: uvicorn.Config, routes: DashboardRouter) -> None:
        super().__init__(config)
        self.routes = routes
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        self.listening.set()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        asyncio.get_running_loop().call_soon_threadsafe(self.routes.hub.close)
        super().handle_exit(sig, frame)


async def serve(settings: DashboardServerSettings) -> None:
    """Serve until SIGTERM/SIGINT; print the URL once listening."""
    app, routes = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.api_host,
        port=settings.api_port,
        timeout_graceful_shutdown=max(1, round(settings.api_shutdown_grace)),
        log_config=None,  # the process's logging, as set up by setup_logging
        access_log=False,
    )
    server = _Server(config, routes)
    task = asyncio.create_task(server.serve())
    lag = asyncio.create_task(app.state.loop_lag.run())
    try:
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait((task, listening), return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if server.started:
            app.state.auth.announce()
            host, port = server.servers[0].sockets[0].getsockname()[:2]
            print(f"dashboard: http://{host}:{port}/", flush=True)
        await task
    finally:
        lag.cancel()


def _parse(argv: Sequence[str] | None) -> dict[str, object]:
    parser = argparse.ArgumentParser(
        prog="python -m control_plane.api.dashboard",
        description="Serve the live dashboard alone (no PostgreSQL needed).",
    )
    parser.add_argument("--host", dest="api_host", help="env STREAMPLANE_API_HOST")
    parser.add_argument("--port", dest="api_port", help="env STREAMPLANE_API_PORT (0: any)")
    parser.add_argument(
        "--bootstrap", dest="kafka_bootstrap", help="env STREAMPLANE_KAFKA_BOOTSTRAP"
    )
    parser.add_argument("--topic-prefix", dest="topic_prefix", help="env STREAMPLANE_TOPIC_PREFIX")
    parser.add_argument("--log-level", help="env STREAMPLANE_LOG_LEVEL")
    return {k: v for k, v in vars(parser.parse_args(argv)).items() if v is not None}


def main(argv: Sequence[str] | None = None) -> int:
    """Read the settings once, then serve; a bad setting is one ``error:`` line (exit 2)."""
    options = _parse(argv)
    level = options.pop("log_level", None)
    try:
        settings = DashboardServerSettings(**options)  # type: ignore[arg-type]
        setup_logging(level=str(level) if level else None)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        print(f"error: {where}: {first['msg']} (got {first.get('input')!r})", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(settings))
    except AuthConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
