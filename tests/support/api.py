"""What the API tests share: the app in-process over httpx's ASGI transport (its lifespan
run), a read model kept in step by a real ReadModelProjector in the same loop, and checks
of the one error shape and the seq header."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx

from control_plane.api import SEQ_HEADER, ApiSettings, create_app
from projections.read_model import ReadModelProjector

ERROR_KEYS = {"error", "message", "field", "reason", "command_id", "as_of_seq"}


class ApiClient:
    """An httpx client on the app, with assertions on every answer."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.http = client

    async def call(
        self, method: str, path: str, expect: int = 200, **kwargs: Any
    ) -> dict[str, Any]:
        """``method path``; asserts the status is ``expect``, the error shape of an error
        and, for a read, the seq header equal to ``as_of_seq``."""
        response = await self.http.request(method, path, **kwargs)
        assert response.status_code == expect, f"{method} {path}: {response.text}"
        body: dict[str, Any] = response.json()
        if expect >= 400:
            assert set(body) <= ERROR_KEYS and {"error", "message"} <= set(body), body
        if "as_of_seq" in body:
            assert int(response.headers[SEQ_HEADER]) == body["as_of_seq"]
        elif expect == 200 and method == "GET":
            raise AssertionError(f"GET {path} says no seq: {body}")
        return body

    async def get(self, path: str, expect: int = 200, **params: Any) -> dict[str, Any]:
        return await self.call("GET", path, expect, params=params)

    async def post(self, path: str, expect: int = 200, **kwargs: Any) -> dict[str, Any]:
        return await self.call("POST", path, expect, **kwargs)


@contextlib.asynccontextmanager
async def running_api(
    settings: ApiSettings, *, read_model: bool = True
) -> AsyncIterator[ApiClient]:
    """The app (lifespan entered) and, with ``read_model``, a projector keeping the read
    model of ``settings`` up to date until the block ends."""
    stop = asyncio.Event()
    projector_task: asyncio.Task[None] | None = None
    if read_model:
        projector = ReadModelProjector(settings=settings.read_model_settings())

        async def project() -> None:
            async with projector:
                await projector.run(stop)

        projector_task = asyncio.create_task(project(), name="test:read-model")
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
                yield ApiClient(client)
    finally:
        stop.set()
        if projector_task is not None:
            async with asyncio.timeout(30):
                await projector_task


async def caught_up(api: ApiClient, seq: int, within: float = 30.0) -> dict[str, Any]:
    """Wait until the read model is at ``seq`` or later; returns ``GET /health``."""
    async with asyncio.timeout(within):
        while True:
            health = await api.get("/health")
            if health["as_of_seq"] >= seq:
                return health
            await asyncio.sleep(0.1)
