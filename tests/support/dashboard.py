"""What the dashboard tests share: the page's merge of the stream's messages (the same rule
as ``dashboard.js``), a reader of the server-sent events, the dashboard served alone as a
child of a test cluster, and the Chromium to drive."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from control_plane.tools.demo_dashboard import DASHBOARD, url_of
from support.cluster import Cluster

#: seconds the dashboard may take to listen
START_WITHIN = 30.0
#: where Debian's package puts it; STREAMPLANE_CHROMIUM names another executable
CHROMIUM_NAMES = ("chromium", "chromium-browser")


class PageModel:
    """The page's data, merged from the stream's messages as ``dashboard.js`` merges them."""

    def __init__(self) -> None:
        self.header: dict[str, Any] = {}
        self.instances: dict[str, Any] = {}
        self.streams: dict[str, Any] = {}
        self.alerts: dict[str, Any] = {}
        self.feed: list[dict[str, Any]] = []
        self.timeline: dict[int, dict[str, Any]] = {}
        self.kinds: list[str] = []

    def take(self, msg: dict[str, Any]) -> None:
        self.kinds.append(msg["kind"])
        if msg["kind"] == "snapshot":
            self.instances, self.streams = dict(msg["instances"]), dict(msg["streams"])
            self.alerts, self.feed = dict(msg["alerts"]), list(msg["feed"])
            self.timeline = {b["t"]: b for b in msg["timeline"]}
        elif msg["kind"] == "delta":
            _merge(self.instances, msg["instances"])
            _merge(self.streams, msg["streams"])
            self.feed += msg["events"]
            self.timeline.update({b["t"]: b for b in msg["timeline"]})
        elif msg["kind"] == "alerts":
            _merge(self.alerts, msg["alerts"])
        if msg["kind"] in ("snapshot", "delta"):
            self.header = {k: msg[k] for k in ("seq", "epoch", "leader", "maintenance", "counts")}

    @property
    def seq(self) -> int:
        return int(self.header.get("seq", 0))


def _merge(into: dict[str, Any], values: dict[str, Any]) -> None:
    for key, value in values.items():
        if value is None:
            into.pop(key, None)
        else:
            into[key] = value


async def _read(response: httpx.Response, page: PageModel) -> None:
    async for line in response.aiter_lines():
        if line.startswith("data: "):
            page.take(orjson.loads(line.removeprefix("data: ")))


@contextlib.asynccontextmanager
async def following(url: str) -> AsyncIterator[PageModel]:
    """A :class:`PageModel` kept up to date from ``url``'s stream while the block runs."""
    page = PageModel()
    timeout = httpx.Timeout(10.0, read=None)
    async with (
        httpx.AsyncClient(base_url=url, timeout=timeout) as client,
        client.stream("GET", "/dashboard/events") as response,
    ):
        assert response.status_code == 200, response.status_code
        assert response.headers["content-type"].startswith("text/event-stream")
        reader = asyncio.create_task(_read(response, page))
        try:
            yield page
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader


async def serve_dashboard(cluster: Cluster, **env: str) -> str:
    """The dashboard served alone for ``cluster`` on a free loopback port; its URL."""
    child = cluster.children.spawn("dashboard", "dashboard", [*DASHBOARD, "--port", "0"], env)
    url = await url_of(child, START_WITHIN)
    assert url is not None, f"the dashboard printed no URL: {child.log_tail(20)}"
    return url


def chromium() -> str:
    """The Chromium executable, or a failure saying how to get one (never a skip: the
    browser test is part of the test command, and set-up installs the browser)."""
    named = os.environ.get("STREAMPLANE_CHROMIUM")
    found = named or next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    if not found or not os.access(found, os.X_OK):
        pytest.fail(
            "no Chromium to drive: scripts/setup.sh installs Debian's `chromium` when run as "
            "root (apt-get install -y chromium); elsewhere install it, or set "
            f"STREAMPLANE_CHROMIUM to a Chromium executable (looked for {named or CHROMIUM_NAMES})"
        )
    return found
