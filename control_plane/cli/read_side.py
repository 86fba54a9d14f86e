"""The read side's commands, mounted by ``control_plane.cli`` as ``streamplane projector``,
``streamplane api`` and ``streamplane read-model``. Settings come from the environment
(prefix ``STREAMPLANE_``); options override them."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from control_plane.api import ApiSettings

log = logging.getLogger("streamplane.api")
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

Bootstrap = Annotated[
    str | None, typer.Option(help="Kafka bootstrap (env STREAMPLANE_KAFKA_BOOTSTRAP).")
]
Prefix = Annotated[str | None, typer.Option(help="Topic prefix (env STREAMPLANE_TOPIC_PREFIX).")]
DatabaseUrl = Annotated[
    str | None, typer.Option(help="PostgreSQL URL (env STREAMPLANE_DATABASE_URL).")
]
Schema = Annotated[
    str | None, typer.Option(help="PostgreSQL schema (env STREAMPLANE_DATABASE_SCHEMA).")
]
LogLevel = Annotated[str, typer.Option(help="Log level.")]


def _overrides(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


async def _until_signalled(main: Any) -> None:
    """Run ``main(stop)`` until SIGINT/SIGTERM sets ``stop``."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await main(stop)


def projector(
    bootstrap: Bootstrap = None, topic_prefix: Prefix = None, log_level: LogLevel = "INFO"
) -> None:
    """Run the Faust projector: tables instances, assignments, liveness and the
    <prefix>.assignments topic, until SIGTERM/SIGINT."""
    from projections.projector.app import ProjectorSettings, run_projector

    logging.basicConfig(stream=sys.stderr, level=log_level.upper(), format=LOG_FORMAT)
    settings = ProjectorSettings(**_overrides(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix))
    run_projector(settings, loglevel=log_level.lower())


def read_model(
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    rebuild: Annotated[
        bool, typer.Option(help="Drop the tables and project the log again.")
    ] = False,
    once: Annotated[bool, typer.Option(help="Catch up to the end of the log, then exit.")] = False,
    log_level: LogLevel = "INFO",
) -> None:
    """Keep the PostgreSQL read model equal to the fold of the control log."""
    from projections.io.read_store import ReadModelSettings
    from projections.read_model import ReadModelProjector

    logging.basicConfig(stream=sys.stderr, level=log_level.upper(), format=LOG_FORMAT)
    settings = ReadModelSettings(
        **_overrides(
            kafka_bootstrap=bootstrap,
            topic_prefix=topic_prefix,
            database_url=database_url,
            database_schema=schema,
        )
    )

    async def main(stop: asyncio.Event) -> None:
        async with ReadModelProjector(settings=settings) as p:
            applied = await (p.rebuild() if rebuild else p.catch_up())
            typer.echo(f"read model at offset {p.offset} (seq {p.state.seq}); applied {applied}")
            if not once:
                await p.run(stop)

    asyncio.run(_until_signalled(main))


def api(
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    host: Annotated[
        str | None, typer.Option(help="Listen address (env STREAMPLANE_API_HOST).")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Listen port (env STREAMPLANE_API_PORT).")
    ] = None,
    with_read_model: Annotated[
        bool, typer.Option(help="Also keep the read model up to date in this process.")
    ] = True,
    log_level: LogLevel = "INFO",
) -> None:
    """Serve the HTTP API (health, instances, streams, history, time travel, commands)."""
    from control_plane.api import ApiSettings

    logging.basicConfig(stream=sys.stderr, level=log_level.upper(), format=LOG_FORMAT)
    settings = ApiSettings(
        **_overrides(
            kafka_bootstrap=bootstrap,
            topic_prefix=topic_prefix,
            database_url=database_url,
            database_schema=schema,
            api_host=host,
            api_port=port,
        )
    )

    async def main(stop: asyncio.Event) -> None:
        await serve(settings, with_read_model=with_read_model, stop=stop)

    asyncio.run(_until_signalled(main))


async def serve(
    settings: ApiSettings, *, with_read_model: bool = True, stop: asyncio.Event | None = None
) -> None:
    """Serve the API on ``api_host:api_port`` until ``stop`` is set; with ``with_read_model``
    the same process also keeps the read model up to date (a ReadModelProjector): the two
    processes composed in one, here at the top, so neither imports the other."""
    from aiohttp import web

    from control_plane.api import create_app
    from projections.read_model import ReadModelProjector

    stop = stop or asyncio.Event()
    runner = web.AppRunner(create_app(settings))
    await runner.setup()
    try:
        await web.TCPSite(runner, settings.api_host, settings.api_port).start()
        log.info("API on http://%s:%d", settings.api_host, settings.api_port)
        if not with_read_model:
            await stop.wait()
            return
        async with ReadModelProjector(settings=settings.read_model_settings()) as projector:
            await projector.run(stop)
    finally:
        await runner.cleanup()


__all__ = ["api", "projector", "read_model", "serve"]
