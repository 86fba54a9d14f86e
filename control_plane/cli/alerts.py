"""``streamplane monitor`` (run the alerting process) and ``streamplane alerts`` (read what it
found), mounted by :mod:`control_plane.cli.main`. Errors end as the CLI's one ``error:`` line
(:mod:`control_plane.tools.exits`): Kafka down is exit code 3.
"""

from __future__ import annotations

import asyncio
import json
import signal
from typing import Annotated, Any

import typer

from control_plane.tools.options import AsJson, Bootstrap, LogFormatOption, LogLevelOption, Prefix
from events.alerts import AlertFired, AlertMessage
from events.topics import Topics
from kafka_auth import Brokers
from telemetry.logs import setup_logging

Follow = Annotated[
    bool, typer.Option("--follow", "-f", help="Then print transitions as they come (Ctrl-C ends).")
]
ShowAll = Annotated[
    bool, typer.Option("--all", help="Every alert key's latest status, resolved ones too.")
]
DatabaseUrl = Annotated[
    str | None,
    typer.Option(help="PostgreSQL of the read model to watch (env STREAMPLANE_DATABASE_URL)."),
]
Interval = Annotated[
    float | None,
    typer.Option(min=0.01, help="Seconds between evaluations (env STREAMPLANE_MONITOR_INTERVAL)."),
]
Webhook = Annotated[
    list[str] | None,
    typer.Option(help="POST each transition here (repeatable; env STREAMPLANE_MONITOR_WEBHOOKS)."),
]


def _overrides(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def monitor(
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
    database_url: DatabaseUrl = None,
    interval: Interval = None,
    webhook: Webhook = None,
    log_level: LogLevelOption = None,
    log_format: LogFormatOption = None,
) -> None:
    """Run the monitor: the alert rules over the control log and the cluster's signals,
    each transition published to <prefix>.alerts (and webhooks), until SIGTERM/SIGINT."""
    from control_plane.monitor import MonitorSettings, run_monitor

    setup_logging(level=log_level, fmt=log_format)
    settings = MonitorSettings(
        **_overrides(
            kafka_bootstrap=bootstrap,
            topic_prefix=topic_prefix,
            database_url=database_url,
            monitor_interval=interval,
            monitor_webhooks=tuple(webhook) if webhook else None,
        )
    )
    asyncio.run(run_monitor(settings))


def alerts(
    as_json: AsJson = False,
    follow: Follow = False,
    show_all: ShowAll = False,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
) -> None:
    """The alerts firing now (the latest record per key of <prefix>.alerts), worst first."""
    from control_plane.monitor import MonitorSettings

    s = MonitorSettings(**_overrides(kafka_bootstrap=bootstrap, topic_prefix=topic_prefix))
    asyncio.run(_alerts(s.kafka_access, Topics(s.topic_prefix), s, as_json, follow, show_all))


async def _alerts(
    bootstrap: Brokers, topics: Topics, s: Any, as_json: bool, follow: bool, show_all: bool
) -> None:
    from projections.io.alerts import AlertLog

    stop = asyncio.Event()
    if follow:  # Ctrl-C (or SIGTERM) ends the follow like its natural end: exit code 0
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    async with AlertLog(bootstrap, topics, kafka_timeout=s.monitor_kafka_timeout) as log:
        await log.catch_up()
        shown = sorted(log.latest.values(), key=_order) if show_all else log.firing()
        if as_json:
            typer.echo(json.dumps([row(m) for m in shown]))
        else:
            typer.echo(f"# {len(log.firing())} alert(s) firing on {topics.alerts}")
            for m in shown:
                typer.echo(text(m))
        while follow and not stop.is_set():
            for m in await log.poll(timeout_ms=500):
                typer.echo(json.dumps(row(m)) if as_json else transition(m))


def _order(m: AlertMessage) -> tuple[bool, str]:
    return (not isinstance(m, AlertFired), m.key)


def row(m: AlertMessage) -> dict[str, Any]:
    """One alert as ``--json`` prints it (and the HTTP API may serve it)."""
    return {
        "key": m.key,
        "rule": m.rule,
        "about": m.about,
        "status": "firing" if isinstance(m, AlertFired) else "resolved",
        "severity": m.severity.value,
        "summary": m.summary,
        "evidence": dict(m.evidence),
        "action": m.action,
        "seq": m.seq,
        "at": m.time.isoformat().replace("+00:00", "Z"),
        "held_back": m.held_back,
    }


def text(m: AlertMessage) -> str:
    """One alert as the list shows it: two lines, the second says what to do."""
    status = "" if isinstance(m, AlertFired) else " (resolved)"
    since = m.time.strftime("%Y-%m-%d %H:%M:%SZ")
    return (
        f"{m.severity.value:<8} {m.key}{status}: {m.summary} (since {since}, seq {m.seq})\n"
        f"         action: {m.action}"
    )


def transition(m: AlertMessage) -> str:
    """One record as ``--follow`` prints it."""
    word = "FIRING  " if isinstance(m, AlertFired) else "RESOLVED"
    at = m.time.strftime("%H:%M:%S")
    return f"{at} {word} {m.severity.value:<8} {m.key}: {m.summary}"


__all__ = ["alerts", "monitor"]
