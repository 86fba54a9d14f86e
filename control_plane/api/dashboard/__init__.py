"""The live dashboard: a web page at the API's root URL, fed from the control log.

Someone who has never seen the system opens it and sees the instances with their load
against capacity and their health, the streams by status, the migrations in flight, a live
feed of control events, the firing alerts and a timeline of failovers, rebalances and
stream counts. The page updates itself from a server-sent event stream: a snapshot, then
one delta per batch of events that the server's :class:`~projections.io.follow.LogFollower`
folded (:mod:`.hub`, :mod:`.view`); it never polls the whole state. The charts are SVG
drawn by the page's own small script (``static/``): no third-party front-end code.

``router(settings)`` gives the routes (:mod:`.routes`) to include in the API's app; the app's
lifespan starts and stops the log reader. ``python -m control_plane.api.dashboard`` serves
the dashboard alone, without the API's PostgreSQL reads (:mod:`.server`). docs/dashboard.md
says more.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from control_plane.api.dashboard.routes import DashboardRouter, build_router
from control_plane.api.dashboard.settings import DashboardServerSettings, DashboardSettings
from events.topics import Topics
from kafka_auth import KafkaAccess


class Source(Protocol):
    """What the dashboard needs of a process's settings: where the log is."""

    @property
    def kafka_access(self) -> KafkaAccess: ...

    @property
    def topic_prefix(self) -> str: ...


def router(
    settings: Source,
    dashboard: DashboardSettings | None = None,
    *,
    dependencies: Sequence[Any] = (),
    responses: dict[int | str, dict[str, Any]] | None = None,
) -> DashboardRouter:
    """The dashboard's routes (``/``, ``/dashboard/...``) reading the log that ``settings``
    name, with the bounds of ``dashboard`` (its defaults when None); ``dependencies`` guard
    the routes that carry data (the snapshot and the stream), not the page and its files."""
    return build_router(
        settings.kafka_access,
        Topics(settings.topic_prefix),
        dashboard or DashboardSettings(),
        dependencies=dependencies,
        responses=responses,
    )


__all__ = ["DashboardRouter", "DashboardServerSettings", "DashboardSettings", "router"]
