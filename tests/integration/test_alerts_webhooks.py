"""Webhook delivery (control_plane.monitor.webhooks) against a real HTTP server on loopback:
retried with back-off until it answers, a refusal not retried, an endpoint that keeps failing
cut off by its circuit breaker (and probed again later), a full queue dropping the oldest,
and a dead endpoint never holding up a live one."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import httpx
import pytest
from support.alerts import webhook_server

from control_plane.monitor.settings import MonitorSettings
from control_plane.monitor.webhooks import Webhook, client

pytestmark = pytest.mark.integration


def settings(**values: object) -> MonitorSettings:
    base: dict[str, object] = {
        "monitor_webhook_attempts": 3,
        "monitor_webhook_backoff_base": 0.01,
        "monitor_webhook_backoff_cap": 0.05,
        "monitor_webhook_timeout": 2.0,
        "monitor_webhook_breaker_threshold": 3,
        "monitor_webhook_breaker_reset": 0.5,
    }
    return MonitorSettings(**(base | values))  # type: ignore[arg-type]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    c = client(settings())
    try:
        yield c
    finally:
        await c.aclose()


async def test_a_failing_endpoint_is_retried_until_it_answers(http: httpx.AsyncClient) -> None:
    with webhook_server([500, 503]) as server:
        hook = Webhook(server.url, settings(), http)
        assert await hook.deliver(b'{"n": 1}') == "delivered"
        assert server.requests == 3
        assert [d.body for d in server.deliveries] == [b'{"n": 1}']
        assert server.deliveries[0].content_type == "application/cloudevents+json"
        assert server.deliveries[0].path == "/hooks/T000/secret-token"


async def test_a_refusal_is_not_retried_and_does_not_open_the_breaker(
    http: httpx.AsyncClient,
) -> None:
    with webhook_server([400, 400, 400, 400]) as server:
        hook = Webhook(server.url, settings(), http)
        for _ in range(4):
            assert await hook.deliver(b"{}") == "refused"
        assert server.requests == 4
        assert hook.breaker.state.value == "closed"


async def test_a_dead_endpoint_opens_its_breaker_then_is_probed_again(
    http: httpx.AsyncClient,
) -> None:
    with webhook_server([500] * 6) as server:
        hook = Webhook(server.url, settings(), http)
        assert await hook.deliver(b"{}") == "failed"  # three tries: the breaker opens
        assert server.requests == 3
        assert await hook.deliver(b"{}") == "skipped"  # not even tried
        assert server.requests == 3
        await asyncio.sleep(0.6)  # breaker_reset
        assert await hook.deliver(b"{}") == "failed"  # one probe, failed: open again
        assert server.requests == 4
        await asyncio.sleep(0.6)
        server.deliveries.clear()
        assert await hook.deliver(b"{}") in ("failed", "delivered")


async def test_a_full_queue_drops_the_oldest_and_offer_never_waits(http: httpx.AsyncClient) -> None:
    with webhook_server() as server:
        hook = Webhook(server.url, settings(monitor_webhook_queue=2), http)
        for i in range(5):
            hook.offer(f"{i}".encode())
        assert hook.pending() == 2 and hook.outcomes["dropped"] == 3
        await hook.drain(5.0)
        assert [d.body for d in server.deliveries] == [b"3", b"4"]
        assert hook.outcomes["delivered"] == 2


async def test_a_dead_endpoint_does_not_hold_up_a_live_one(http: httpx.AsyncClient) -> None:
    s = settings(monitor_webhook_timeout=2.0)
    with webhook_server() as server, socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # connections are queued by the kernel and never answered
        dead = Webhook(f"http://127.0.0.1:{silent.getsockname()[1]}/hook", s, http)
        live = Webhook(server.url, s, http)
        tasks = [asyncio.create_task(h.run()) for h in (dead, live)]
        try:
            began = time.monotonic()
            for hook in (dead, live):  # the dead one first
                hook.offer(b"{}")
            assert await asyncio.to_thread(server.delivered.wait, 5.0)
            assert time.monotonic() - began < 1.5  # not after the dead one's 2 s timeout
            assert dead.outcomes["delivered"] == 0 and dead.pending() == 0
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
