"""``streamplane audit drift``: compare the projections with the log, and repair them.

The comparison itself is pure (:mod:`projections.fold.drift`); this module reads:

- the **PostgreSQL read model**: the tracking row, ``streams``, ``instances``, the ``cluster``
  row and migrations in flight, in one read-only repeatable-read transaction, then folds the
  log up to the tracking row's ``next_offset`` (from the latest snapshot when it lies before)
  and the tail after it (for the lag);
- the **``<prefix>.assignments`` topic** (``--assignments``): every partition from the
  beginning to the end seen now, then the log up to the records' highest ``as_of_seq`` and
  the tail after it.

``--repair``: the read model is **rebuilt from the log** (``ReadModelProjector.rebuild()``:
tables dropped, recreated and projected again; a projector running meanwhile resumes from the
reset tracking row). The assignments topic is a projection, not the log, so the correct
record is **republished** for each drifted key (reason ``drift_repair``, keyed like the
projector's records so it lands in the same partition and compaction keeps it). The control
log is never written. After a repair the check runs again.

Exit codes: 0 no drift (lag alone is fine), 1 drift found and not repaired, 3 Kafka or
PostgreSQL unreachable (:mod:`control_plane.tools.exits`).
"""

from __future__ import annotations

import asyncio
import json
from typing import Annotated, Any

import orjson
import typer
from aiokafka import errors as kafka_errors

from control_plane.drift_io import (
    check_assignments,
    check_read_model,
    read_assignments,
    read_model_rows,
)
from control_plane.tools.exits import reports_errors
from control_plane.tools.options import Bootstrap, Prefix
from events.topics import Topics
from kafka_auth import Brokers
from projections.fold.drift import (
    DriftReport,
    assignment_repairs,
)
from projections.fold.state import ClusterState
from projections.io.kafka import kafka_error, make_producer, started
from projections.io.read_store import ReadModelSettings
from projections.read_model import ReadModelProjector

EXIT_DRIFT = 1


async def repair_read_model(settings: ReadModelSettings) -> int:
    """Rebuild the read model from the log; returns the events projected."""
    async with ReadModelProjector(settings=settings) as projector:
        return await projector.rebuild()


async def repair_assignments(
    bootstrap: Brokers,
    topics: Topics,
    report: DriftReport,
    at: ClusterState,
    *,
    kafka_timeout: float,
) -> int:
    """Republish the correct record (or a tombstone) for each drifted key; returns how many.
    Keyed by stream id with the default partitioner, as the Faust projector publishes."""
    updates = assignment_repairs(at, report)
    producer = make_producer(bootstrap, linger_ms=0)
    async with started(producer, kafka_timeout=kafka_timeout, what="assignments repair"):
        try:
            async with asyncio.timeout(kafka_timeout):
                for update in updates:
                    value = None if update.value is None else orjson.dumps(update.value)
                    await producer.send_and_wait(topics.assignments, value, key=update.key.encode())
        except (TimeoutError, kafka_errors.KafkaError) as exc:
            raise kafka_error(exc, f"republish to {topics.assignments}") from exc
    return len(updates)


# --- the command ------------------------------------------------------------------------


async def run_drift(
    settings: ReadModelSettings, *, read_model: bool, assignments: bool, repair: bool
) -> dict[str, Any]:
    """Check (and with ``repair`` put right, then check again) the chosen projections;
    a JSON-able summary whose ``clean`` says whether drift remains."""
    bootstrap, topics = settings.kafka_access, Topics(settings.topic_prefix)
    timeout = settings.kafka_timeout
    out: dict[str, Any] = {"reports": [], "repairs": []}
    if read_model:
        report = await check_read_model(settings)
        if repair and not report.clean:
            events = await repair_read_model(settings)
            out["repairs"].append(
                {"projection": "read_model", "action": "rebuilt from the log", "events": events}
            )
            report = await check_read_model(settings)
        out["reports"].append(report.to_json())
    if assignments:
        report, at = await check_assignments(bootstrap, topics, kafka_timeout=timeout)
        if repair and not report.clean:
            n = await repair_assignments(bootstrap, topics, report, at, kafka_timeout=timeout)
            out["repairs"].append(
                {"projection": "assignments", "action": "republished records", "records": n}
            )
            report, _ = await check_assignments(bootstrap, topics, kafka_timeout=timeout)
        out["reports"].append(report.to_json())
    out["clean"] = all(r["clean"] for r in out["reports"])
    return out


def _print(summary: dict[str, Any]) -> None:
    for fix in summary["repairs"]:
        count = fix.get("events", fix.get("records"))
        typer.echo(f"repaired {fix['projection']}: {fix['action']} ({count})")
    for r in summary["reports"]:
        lag = f"lagging by {r['lag']}" if r["lag"] else "up to date"
        typer.echo(
            f"{r['projection']}: as of seq {r['as_of_seq']} (log head seq {r['head_seq']}, "
            f"{lag}); {r['checked']} key(s) checked, {len(r['drifts'])} drifted"
        )
        for d in r["drifts"]:
            what = ", ".join(d["fields"]) or ("missing" if d["found"] is None else "unexpected")
            typer.echo(
                f"  projection_drift {d['table']} {d['key']} [{what}]: "
                f"expected {json.dumps(d['expected'])} found {json.dumps(d['found'])}"
            )
    typer.echo("OK" if summary["clean"] else "DRIFT")


@reports_errors  # also mounted on an app of its own (tests/integration/test_drift_kafka.py)
def audit_drift(
    database_url: Annotated[
        str | None, typer.Option(help="Read model database (env STREAMPLANE_DATABASE_URL).")
    ] = None,
    schema: Annotated[
        str | None, typer.Option(help="Read model schema (env STREAMPLANE_DATABASE_SCHEMA).")
    ] = None,
    read_model: Annotated[
        bool, typer.Option("--read-model/--no-read-model", help="Check the read model.")
    ] = True,
    assignments: Annotated[
        bool, typer.Option("--assignments", help="Check the <prefix>.assignments topic.")
    ] = False,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Rebuild the read model from the log; republish drifted assignment records.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
) -> None:
    """Compare projections with the log at their own as-of seq (lag is not drift). Exit 0
    clean, 1 drift found (and not repaired), 3 Kafka or PostgreSQL unreachable."""
    overrides: dict[str, Any] = {
        "database_url": database_url,
        "database_schema": schema,
        "kafka_bootstrap": bootstrap,
        "topic_prefix": topic_prefix,
    }
    settings = ReadModelSettings(**{k: v for k, v in overrides.items() if v is not None})
    run = run_drift(settings, read_model=read_model, assignments=assignments, repair=repair)
    summary = asyncio.run(run)
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print(summary)
    if not summary["clean"]:
        raise typer.Exit(EXIT_DRIFT)


__all__ = [
    "audit_drift",
    "check_assignments",
    "check_read_model",
    "read_assignments",
    "read_model_rows",
    "repair_assignments",
    "repair_read_model",
    "run_drift",
]
