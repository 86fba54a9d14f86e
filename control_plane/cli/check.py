"""``streamplane check``: replay the log, compare every view with it, repair with events.

The check is :func:`control_plane.checker_run.run_check` (one replay, the views read, the
pure :class:`~control_plane.decide.checker.ConsistencyChecker`). ``--repair`` carries out the
ConsistencyErrorHandler's plan (:func:`control_plane.decide.checker.plan_repairs`):

1. projections are put right from the log here, as ``audit drift --repair`` does (the read
   model rebuilt, drifted assignment records republished): they are folds of the log;
2. every divergence (those included, with what was done) goes to the orchestrator in one
   ``RunConsistencyCheck(divergences=...)``, which checks each again and repairs it with
   events (``reason=consistency_repair``), and records each as found and repaired;
3. the check runs again, and its outcome decides the exit code.

Exit codes: 0 clean, 1 divergence remains, 2 usage, 3 Kafka or PostgreSQL unreachable or
no orchestrator answered (:mod:`control_plane.tools.exits`). Progress of a long replay goes
to stderr. ``--live`` is the former check: the orchestrator compares its own state with the
heartbeats (``verify_system_consistency``) and logs what it finds.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated, Any

import typer

from control_plane.checker_run import CheckRun, CheckSettings, run_check, wait_for_table
from control_plane.cli.drift import repair_assignments, repair_read_model
from control_plane.client import send_command
from control_plane.decide.checker import ConsistencyReport, plan_repairs, to_command
from control_plane.drift_io import check_assignments
from control_plane.tools.options import Bootstrap, OperatorSettings, Prefix
from events import commands as cmd
from events import control as ev
from events.topics import Topics
from projections.io.read_store import ReadModelSettings
from projections.io.replay import ReplayProgress

EXIT_DIVERGENCE = 1


def _progress(p: ReplayProgress) -> None:
    typer.echo(f"replay: offset {p.offset}/{p.stop_offset}, {p.events} events", err=True)


async def _check(rm: ReadModelSettings, cs: CheckSettings, opts: dict[str, bool]) -> CheckRun:
    return await run_check(
        rm,
        cs,
        read_model=opts["read_model"],
        assignments=opts["assignments"],
        faust_tables=opts["faust_tables"],
        on_progress=_progress,
    )


async def _repair_views(rm: ReadModelSettings, rebuild: frozenset[str]) -> dict[str, str]:
    """Put the drifted projections right from the log; view -> what was done."""
    done: dict[str, str] = {}
    if "read_model" in rebuild:
        n = await repair_read_model(rm)
        done["read_model"] = f"read model rebuilt from the log ({n} events)"
    if "assignments" in rebuild:
        topics, timeout = Topics(rm.topic_prefix), rm.kafka_timeout
        report, at = await check_assignments(rm.kafka_access, topics, kafka_timeout=timeout)
        n = await repair_assignments(rm.kafka_access, topics, report, at, kafka_timeout=timeout)
        done["assignments"] = f"{n} assignment record(s) republished from the log"
    return done


async def repair(
    rm: ReadModelSettings, cs: CheckSettings, report: ConsistencyReport
) -> list[dict[str, Any]]:
    """Carry out the plan for ``report``; what was done, one entry per divergence."""
    plan = plan_repairs(report)
    actions = await _repair_views(rm, plan.rebuild)
    projection = [d for d in report.divergences if d.view in actions]
    items = to_command([*plan.send, *projection], actions=actions)
    if not items:
        return []
    _, caused = await send_command(
        rm.kafka_access,
        Topics(rm.topic_prefix),
        cmd.RunConsistencyCheck,
        wait_s=cs.command_wait,
        repair=True,
        divergences=items[: cmd.MAX_REPORTED_DIVERGENCES],
        principal=OperatorSettings().who(),
    )
    fixed = [e for e in caused if isinstance(e, ev.ConsistencyDivergenceRepaired)]
    rewrites = [e for e in fixed if e.action == ev.PROJECTOR_REWRITE]
    for table, ids in (("assignments", "stream_id"), ("instances", "server_id")):
        seqs = [e.seq for e in rewrites if getattr(e, ids) is not None]
        if seqs:  # the projector carries these out as it folds the log: wait for it
            await wait_for_table(
                rm.kafka_access,
                Topics(rm.topic_prefix),
                cs,
                max(seqs),
                kafka_timeout=rm.kafka_timeout,
                table=table,
            )
    return [
        {"kind": e.kind, "stream_id": e.stream_id, "server_id": e.server_id, "action": e.action}
        for e in fixed
    ]


async def check_and_repair(
    rm: ReadModelSettings, cs: CheckSettings, *, repair_: bool, opts: dict[str, bool]
) -> dict[str, Any]:
    """The whole command as a JSON-able summary whose ``clean`` is the final verdict."""
    first = await _check(rm, cs, opts)
    out: dict[str, Any] = {"report": first.report.to_json(), "events": first.head.events}
    out["rejected"] = first.head.rejected
    if repair_ and not first.report.clean:
        out["repairs"] = await repair(rm, cs, first.report)
        again = await _check(rm, cs, opts)
        out["after"] = again.report.to_json()
        out["clean"] = again.report.clean and not again.head.rejected
    else:
        out["clean"] = first.report.clean and not first.head.rejected
    return out


def _print_report(title: str, r: dict[str, Any]) -> None:
    checked = ", ".join(f"{k} {v}" for k, v in r["checked"].items())
    typer.echo(f"{title}: as of seq {r['as_of_seq']}; checked {checked}")
    for kind, examples in r["examples"].items():
        typer.echo(f"  {kind}: {r['counts'][kind]}")
        for d in examples:
            who = d["stream_id"] or d["server_id"] or d["key"] or ""
            typer.echo(f"    {d['view']} {who}: {d['detail']}")
    typer.echo(f"  consistency_score {r['consistency_score']}")


def _print(summary: dict[str, Any]) -> None:
    _print_report("check", summary["report"])
    if summary["rejected"]:
        typer.echo(f"  {summary['rejected']} undecodable record(s) dead-lettered by the replay")
    for fix in summary.get("repairs", []):
        who = fix["stream_id"] or fix["server_id"] or ""
        typer.echo(f"repaired {fix['kind']} {who}: {fix['action']}")
    if "after" in summary:
        _print_report("check after repair", summary["after"])
    typer.echo("OK" if summary["clean"] else "DIVERGENCE")


def check(
    repair_: Annotated[
        bool, typer.Option("--repair", help="Repair what is found (events, rebuilt projections).")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    read_model: Annotated[
        bool, typer.Option("--read-model/--no-read-model", help="Check the PostgreSQL read model.")
    ] = True,
    assignments: Annotated[
        bool,
        typer.Option(
            "--assignments/--no-assignments", help="Check the <prefix>.assignments topic."
        ),
    ] = True,
    faust_tables: Annotated[
        bool,
        typer.Option(
            "--faust-tables/--no-faust-tables",
            help="Check the Faust projector's assignments table (its changelog topic).",
        ),
    ] = True,
    live: Annotated[
        bool,
        typer.Option(
            "--live", help="Only ask the orchestrator to check its own state (no replay)."
        ),
    ] = False,
    database_url: Annotated[
        str | None, typer.Option(help="Read model database (env STREAMPLANE_DATABASE_URL).")
    ] = None,
    schema: Annotated[
        str | None, typer.Option(help="Read model schema (env STREAMPLANE_DATABASE_SCHEMA).")
    ] = None,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
) -> None:
    """Replay the control log and compare every view with it (read model, assignments and
    desired topics, the workers' heartbeats); with --repair, repair as events and check
    again. Exit 0 clean, 1 divergence remains, 3 Kafka, PostgreSQL or the orchestrator
    unreachable."""
    overrides: dict[str, Any] = {
        "database_url": database_url,
        "database_schema": schema,
        "kafka_bootstrap": bootstrap,
        "topic_prefix": topic_prefix,
    }
    rm = ReadModelSettings(**{k: v for k, v in overrides.items() if v is not None})
    if live:
        _live(rm, repair_)
        return
    opts = {"read_model": read_model, "assignments": assignments, "faust_tables": faust_tables}
    summary = asyncio.run(check_and_repair(rm, CheckSettings(), repair_=repair_, opts=opts))
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
    else:
        _print(summary)
    sys.stdout.flush()
    if not summary["clean"]:
        raise typer.Exit(EXIT_DIVERGENCE)


def _live(rm: ReadModelSettings, repair_: bool) -> None:
    """The orchestrator's own check (RunConsistencyCheck without divergences)."""
    done, caused = asyncio.run(
        send_command(
            rm.kafka_access,
            Topics(rm.topic_prefix),
            cmd.RunConsistencyCheck,
            repair=repair_,
            principal=OperatorSettings().who(),
        )
    )
    for e in caused:
        typer.echo(f"  seq {e.seq}: {e.type} {getattr(e, 'kind', '')} {e.subject or ''}".rstrip())  # type: ignore[attr-defined]
    typer.echo(f"ok (seq {done.seq}): {getattr(done, 'detail', '')}")
    if any(isinstance(e, ev.ConsistencyDivergenceFound) for e in caused) and not repair_:
        raise typer.Exit(EXIT_DIVERGENCE)


__all__ = ["check", "check_and_repair", "repair"]
