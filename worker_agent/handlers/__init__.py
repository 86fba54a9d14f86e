"""Stream handlers: the work itself, behind a small async interface.

A handler is chosen by name in settings (``handler``): a short name from :data:`BUILTIN`
(``demo``, ``command``) or an import path ``package.module:Class``. The class is built as
``Class(settings)`` with the worker's :class:`~worker_agent.settings.WorkerSettings`.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, NamedTuple, Protocol, runtime_checkable

from events.heartbeat import StreamPerformance, StreamRunState
from worker_agent.errors import ConfigError

if TYPE_CHECKING:
    from worker_agent.settings import WorkerSettings


class StreamHealth(NamedTuple):
    """What a handler says about one stream."""

    state: StreamRunState
    error: str | None = None
    performance: StreamPerformance = StreamPerformance()


@runtime_checkable
class StreamHandler(Protocol):
    """Runs streams. The agent calls these from one event loop, one call per stream at a time.

    - ``start`` returns once the stream is under way (it may still be ``starting``); it raises
      :class:`~worker_agent.errors.StreamStartError` (or any error) if it cannot start, and
      the agent retries with back-off.
    - ``stop`` returns once the stream's work has ended; it must not raise for an unknown id.
    - ``health`` is cheap and never raises; an unknown id is ``failed``.
    """

    async def start(self, stream_id: str, params: Mapping[str, str]) -> None: ...

    async def stop(self, stream_id: str) -> None: ...

    async def health(self, stream_id: str) -> StreamHealth: ...


BUILTIN: dict[str, str] = {
    "demo": "worker_agent.handlers.demo:DemoHandler",
    "command": "worker_agent.handlers.command:CommandHandler",
}


def load_handler(name: str, settings: WorkerSettings) -> StreamHandler:
    """Build the handler ``name`` (a short name or ``package.module:Class``)."""
    path = BUILTIN.get(name, name)
    module_name, sep, attr = path.partition(":")
    if not sep or not module_name or not attr:
        raise ConfigError(
            f"handler {name!r}: expected one of {sorted(BUILTIN)} or 'package.module:Class'"
        )
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"handler {name!r}: cannot import {path!r}: {exc}") from exc
    handler = factory(settings)
    if not isinstance(handler, StreamHandler):
        raise ConfigError(f"handler {name!r}: {path!r} lacks start/stop/health")
    return handler
