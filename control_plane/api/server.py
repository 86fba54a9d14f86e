"""The API served by uvicorn inside the caller's event loop, started and stopped by the
caller (``streamplane api``, the demo, tests) rather than by uvicorn's own signal handling:
the process that composes the API with a read model decides when both stop.

The listening socket is bound here, before uvicorn starts, so an address in use is one
:class:`ListenError` naming it (not a log line and an exit from inside uvicorn), and port
0 picks a free port that :attr:`ApiServer.port` then tells.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from control_plane.api.settings import ApiSettings

log = logging.getLogger("streamplane.api")
#: how often start() looks whether uvicorn is up, seconds
_STARTED_POLL = 0.02


class ListenError(OSError):
    """The API cannot listen on its address (in use, not ours, malformed)."""


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # the caller owns SIGINT/SIGTERM (it stops the read model too), not uvicorn
        yield


def bind(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` (IPv4 or IPv6), ready for uvicorn."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        family = infos[0][0]
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        raise ListenError(f"api_host: cannot listen on {host}:{port}: {exc}") from exc
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ListenError(f"api_port: cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.set_inheritable(True)
    return sock


class ApiServer:
    """``async with ApiServer(app, settings) as server:`` serves until the block ends;
    ``server.port`` is where it listens; :meth:`wait` returns if uvicorn stops by itself."""

    def __init__(self, app: FastAPI, settings: ApiSettings) -> None:
        self.settings = settings
        self._app = app
        config = uvicorn.Config(
            app,
            log_config=None,  # the process's logging stays as its CLI set it up
            access_log=False,  # requests are counted in /metrics instead
            lifespan="on",
            timeout_graceful_shutdown=max(1, round(settings.api_shutdown_grace)),
        )
        self._server = _Server(config)
        self._socket: socket.socket | None = None
        self._task: asyncio.Task[None] | None = None
        self.port = settings.api_port

    async def __aenter__(self) -> ApiServer:
        s = self.settings
        self._socket = bind(s.api_host, s.api_port)
        self.port = int(self._socket.getsockname()[1])
        self._task = asyncio.create_task(self._server.serve([self._socket]), name="api:uvicorn")
        while not self._server.started:
            if self._task.done():
                await self._task  # raises what stopped it
                raise ListenError(f"the API on {s.api_host}:{self.port} stopped while starting")
            await asyncio.sleep(_STARTED_POLL)
        log.info("API on http://%s:%d (docs at /docs)", s.api_host, self.port)
        return self

    async def wait(self) -> None:
        """Return when uvicorn stops by itself (it should not)."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def __aexit__(self, *exc: object) -> None:
        routes = getattr(self._app.state, "dashboard", None)
        if routes is not None:
            routes.hub.close()  # open pages would otherwise hold the shutdown to its grace
        self._server.should_exit = True
        if self._task is not None:
            await self._task
        if self._socket is not None:
            self._socket.close()
