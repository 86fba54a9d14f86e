"""The read side's commands, mounted by ``control_plane.cli`` as ``streamplane projector``,
``streamplane api`` and ``streamplane read-model``. Settings come from the environment
(prefix ``STREAMPLANE_``); options override them."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from control_plane.tools.options import Bootstrap, LogFormatOption, LogLevelOption, Prefix
from telemetry.logs import setup_logging

if TYPE_CHECKING:
    from control_plane.api import ApiSettings

log = logging.getLogger("streamplane.api")

DatabaseUrl = Annotated[
    str | None, typer.Option(help="PostgreSQL URL (env STREAMPLANE_DATABASE_URL).")
]
Schema = Annotated[
    str | None, typer.Option(help="PostgreSQL schema (env STREAMPLANE_DATABASE_SCHEMA).")
]


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
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run the Faust projector: tables instances, assignments, liveness and the
    <prefix>.assignments topic, until SIGTERM/SIGINT."""
    from projections.projector.run import run_projector
    from projections.projector.settings import ProjectorSettings

    logs = setup_logging(level=log_level, fmt=log_format)
    settings = ProjectorSettings(**_overrides(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix))
    run_projector(settings, loglevel=(logs.log_level or "INFO").lower())


def read_model(
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    database_url: DatabaseUrl = None,
    schema: Schema = None,
    rebuild: Annotated[
        bool, typer.Option(help="Drop the tables and project the log again.")
    ] = False,
    once: Annotated[bool, typer.Option(help="Catch up to the end of the log, then exit.")] = False,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Keep the PostgreSQL read model equal to the fold of the control log."""
    from projections.io.read_store import ReadModelSettings
    from projections.read_model import ReadModelProjector

    setup_logging(level=log_level, fmt=log_format)
    settings = ReadModelSettings(
        **_overrides(
            kafka_bootstrap=bootstrap,
            topic_prefix=topic_prefix,
            database_url=database_url,
            database_schema=schema,
        )
    )

    async def main(stop: asyncio.Event) -> None:
        # a log line, not a print: with JSON logs the output stays all JSON
        say = logging.getLogger("streamplane.read_model").info
        async with ReadModelProjector(settings=settings) as p:
            if rebuild or once:
                applied = await (p.rebuild() if rebuild else p.catch_up())
                say("read model at offset %d (seq %d); applied %d", p.offset, p.state.seq,
                    applied, extra={"seq": p.state.seq})  # fmt: skip
            if not once:
                # ``run`` catches up too, and pauses (rather than exit) while PostgreSQL is away
                say("read model at offset %d (seq %d); following the log", p.offset,
                    p.state.seq, extra={"seq": p.state.seq})  # fmt: skip
                await p.run(stop)

    asyncio.run(_until_signalled(main))


def api(
    ctx: typer.Context,
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
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Serve the HTTP API (health, instances, streams, history, time travel, commands,
    /metrics, /openapi.json, /docs); `api tokens ...` manages its bearer tokens."""
    if ctx.invoked_subcommand is not None:
        return
    from control_plane.api import ApiSettings
    from control_plane.api.auth import AuthConfigError
    from control_plane.api.server import ListenError

    setup_logging(level=log_level, fmt=log_format)
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

    try:
        asyncio.run(_until_signalled(main))
    except (ListenError, AuthConfigError) as exc:  # in use, not ours, no tokens: usage
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


async def serve(
    settings: ApiSettings, *, with_read_model: bool = True, stop: asyncio.Event | None = None
) -> None:
    """Serve the API (uvicorn) on ``api_host:api_port`` until ``stop`` is set; with
    ``with_read_model`` the same process also keeps the read model up to date (a
    ReadModelProjector): the two processes composed in one, here at the top, so neither
    imports the other."""
    from control_plane.api import create_app
    from control_plane.api.server import ApiServer
    from projections.read_model import ReadModelProjector

    stop = stop or asyncio.Event()
    app = create_app(settings, watch_db=not with_read_model)
    async with ApiServer(app, settings) as server:
        uvicorn_stopped = asyncio.create_task(server.wait(), name="api:server")
        work: asyncio.Task[Any]
        if with_read_model:  # its metrics on the API's /metrics
            projector = ReadModelProjector(
                settings=settings.read_model_settings(), registry=app.state.api.registry
            )
            work = asyncio.create_task(_project(projector, stop), name="api:read-model")
        else:
            work = asyncio.create_task(stop.wait(), name="api:stop")
        try:
            await asyncio.wait([uvicorn_stopped, work], return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.set()  # the read model finishes its batch and stops
            uvicorn_stopped.cancel()  # only the waiter: the server stops on leaving the block
            _, late = await asyncio.wait([work], timeout=settings.api_shutdown_grace)
            for task in late:
                task.cancel()
            await asyncio.gather(uvicorn_stopped, work, return_exceptions=True)
        failure = None if work.cancelled() else work.exception()
        if failure is not None:
            raise failure


async def _project(projector: Any, stop: asyncio.Event) -> None:
    async with projector:
        await projector.run(stop)


__all__ = ["api", "projector", "read_model", "serve"]
