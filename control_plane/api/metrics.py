"""The API's own metrics, served on its HTTP port at ``/metrics`` (always).

``streamplane_api_requests_total{method, route, status}`` and
``streamplane_api_request_duration_seconds{method, route}``, labelled by the route
*template* (``/streams/{stream_id}``), never by a stream id: a label per id would grow the
series without bound. A request no route matched counts as route ``unmatched``.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, make_asgi_app
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from telemetry.metrics import LATENCY_BUCKETS

UNMATCHED = "unmatched"


class ApiMetrics:
    """The request counter and latency histogram on one registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "streamplane_api_requests_total",
            "HTTP requests the API answered, by method, route template and status.",
            ("method", "route", "status"),
            registry=registry,
        )
        self.duration = Histogram(
            "streamplane_api_request_duration_seconds",
            "Time from a request's arrival to the end of its answer, by route template.",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.duration.labels(method, route).observe(seconds)


def _route(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class RequestMetrics:
    """ASGI middleware counting each HTTP request once, with the status it was answered."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # an app that raised before answering

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_note)
        finally:
            elapsed = time.perf_counter() - began
            self.metrics.observe(scope.get("method", "GET"), _route(scope), status, elapsed)


class MetricsEndpoint:
    """prometheus-client's ASGI app for one registry, as a Starlette route endpoint (an
    object, not a function, so Starlette hands it the raw ASGI call)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._app: Any = make_asgi_app(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app(scope, receive, send)


class _LabelledRoute(Route):
    """A plain Starlette route that, like FastAPI's, names itself in the scope (``route``),
    so :class:`RequestMetrics` labels it by its path."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE:
            child["route"] = self
        return match, child


def metrics_route(registry: CollectorRegistry) -> Route:
    """``GET /metrics``: the registry in Prometheus' text format (not in the OpenAPI)."""
    return _LabelledRoute("/metrics", MetricsEndpoint(registry), include_in_schema=False)
