"""The dashboard's routes: the page at ``/``, its files, and the live stream.

==============================  =====================================================
``GET /``                       the page (HTML)
``GET /dashboard/static/NAME``  its stylesheet and scripts (a fixed list, from memory)
``GET /dashboard/events``       server-sent events: a snapshot, then deltas
``GET /dashboard/snapshot``     the snapshot alone, as JSON (for a look with curl)
==============================  =====================================================

The stream is not bounded by a request timeout: it lasts as long as the page is open. It
sends a keep-alive comment when idle, so that a proxy does not close it and a closed
browser is noticed, and the ``retry`` the browser waits before it reconnects.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

from fastapi import APIRouter, FastAPI, HTTPException, Response
from fastapi.responses import StreamingResponse

from control_plane.api.dashboard.hub import Hub, Subscriber, TooManyClientsError, frame, running
from control_plane.api.dashboard.settings import DashboardSettings
from events.topics import Topics
from kafka_auth import Brokers

#: the page's files: name -> media type (nothing else is served from the package)
STATIC = {
    "dashboard.css": "text/css; charset=utf-8",
    "dashboard.js": "text/javascript; charset=utf-8",
    "charts.js": "text/javascript; charset=utf-8",
}
NO_CACHE = {"Cache-Control": "no-cache"}


def _read(name: str) -> bytes:
    return resources.files(__package__).joinpath("static", name).read_bytes()


class DashboardRouter(APIRouter):
    """The routes, and the :class:`Hub` they serve from (``hub.close()`` ends every open
    stream: a server can call it first when it stops, so it does not wait for the pages)."""

    hub: Hub


def build_router(
    bootstrap: Brokers,
    topics: Topics,
    settings: DashboardSettings,
    *,
    dependencies: Sequence[Any] = (),
    responses: dict[int | str, dict[str, Any]] | None = None,
) -> DashboardRouter:
    """The routes of the module docstring over one :class:`Hub` (started by the lifespan
    of the app that includes them); ``dependencies`` guard the two routes with data."""
    hub = Hub(bootstrap, topics, settings)
    files = {name: _read(name) for name in STATIC}
    page = _read("index.html")

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        async with running(hub):
            yield {}

    router = DashboardRouter(lifespan=lifespan, tags=["dashboard"])
    router.hub = hub

    @router.get("/", include_in_schema=False)
    async def index() -> Response:
        return Response(page, media_type="text/html; charset=utf-8", headers=NO_CACHE)

    @router.get("/dashboard/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in files:
            raise HTTPException(404, f"name: no dashboard file {name!r}")
        return Response(files[name], media_type=STATIC[name], headers=NO_CACHE)

    guarded = list(dependencies)

    @router.get(
        "/dashboard/snapshot",
        summary="The dashboard's data as of now",
        dependencies=guarded,
        responses=responses,
    )
    async def snapshot() -> dict[str, Any]:
        data, sub = _subscribe(hub)
        hub.unsubscribe(sub)
        return data

    # not in the OpenAPI document: a stream that never ends is no request/response pair
    # for a client generator or a fuzzer (docs/dashboard.md describes it)
    @router.get("/dashboard/events", include_in_schema=False, dependencies=guarded)
    async def events() -> StreamingResponse:
        data, sub = _subscribe(hub)
        head = f"retry: {settings.reconnect_ms}\n\n".encode() + frame(data)
        return StreamingResponse(
            _stream(hub, sub, head, settings.keepalive),
            media_type="text/event-stream",
            headers={**NO_CACHE, "X-Accel-Buffering": "no"},
        )

    return router


def _subscribe(hub: Hub) -> tuple[dict[str, Any], Subscriber]:
    try:
        return hub.subscribe()
    except TooManyClientsError as exc:
        raise HTTPException(503, f"dashboard: {exc}; try again later") from exc


async def _stream(
    hub: Hub, sub: Subscriber, head: bytes, keepalive: float
) -> AsyncGenerator[bytes, None]:
    """The body of one page's stream, until it is dropped, the server stops or the page
    goes away (then the server's next write fails and this generator is closed)."""
    try:
        yield head
        while True:
            try:
                async with asyncio.timeout(keepalive):
                    data = await sub.queue.get()
            except TimeoutError:
                yield b": keep-alive\n\n"
                continue
            yield data
            if sub.ended and sub.queue.empty():
                return
    finally:
        hub.unsubscribe(sub)
