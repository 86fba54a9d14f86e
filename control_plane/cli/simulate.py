"""``streamplane simulate``: replay recorded history through ``decide`` with other settings
and show the outcome beside what really happened (docs/audit.md, "What-if").

Reads the control log, ``<prefix>.cycles`` (the leader's cycle marks) and the heartbeats and
commands they cite; writes nothing. With no setting changed, the replay must reproduce the
log exactly, and the report says whether it did.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from control_plane.cli.audit import parse_time, resolve_topics, run
from control_plane.cli.audit_history import Progress, Ticker
from control_plane.tools.exits import FAILED, Failure
from control_plane.tools.options import AsJson, Bootstrap, Prefix
from control_plane.tools.simulate import replay as rp
from control_plane.tools.simulate.report import figures, first_divergence, median_start_delay
from control_plane.tools.simulate.source import load

Seconds = Annotated[float | None, typer.Option(min=0, help="Seconds (default: as recorded).")]
Count = Annotated[int | None, typer.Option(min=0, help="Default: as recorded.")]
Fraction = Annotated[float | None, typer.Option(min=0, help="Default: as recorded.")]
#: decide settings the command can change: option name -> DecideConfig field
_TOP = ("suspect_after", "fail_after", "migration_timeout", "rebalance_cooldown")
_BALANCER = ("imbalance_threshold", "imbalance_min_weight", "candidate_limit", "max_moves")


def _overrides(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: values[k] for k in _TOP if values.get(k) is not None}
    for k in ("max_in_flight", "auto_rebalance", "failure_detector"):
        if values.get(k) is not None:
            out[k] = values[k]
    balancer = {
        k: values[f"balancer_{k}"] for k in _BALANCER if values.get(f"balancer_{k}") is not None
    }
    if balancer:
        out["balancer"] = balancer
    return out


def _fail(message: str, field: str = "--since") -> typer.Exit:
    typer.echo(Failure(FAILED, field, message).line, err=True)
    return typer.Exit(FAILED)


def simulate_window(recorded: rp.Recorded, sim: rp.Simulation) -> dict[str, Any]:
    """Replay and report (pure): the figures beside each other and the first divergence."""
    results = list(rp.run(recorded, sim))
    if not results:
        raise LookupError("no recorded leader cycle in the window")
    fork = results[0].seq_before
    sim_log = [e for e in recorded.log if e.seq <= fork]
    for r in results:
        sim_log.extend((*r.term_events, *r.simulated))
    heard = {k: v for r in results for k, v in r.last_heard.items()}
    until = min(sim.until, results[-1].mark.now)
    return {
        "since": sim.since.isoformat(),
        "until": until.isoformat(),
        "cycles": len(results),
        "terms": 1 + sum(1 for r in results if r.term_events),
        "settings": dict(sim.overrides),
        "workers": sim.workers,
        "start_delay_s": sim.start_delay.total_seconds(),
        "real": figures(recorded.log, since=sim.since, until=until, heard=heard),
        "simulated": figures(sim_log, since=sim.since, until=until, heard=heard),
        "first_divergence": first_divergence(results),
    }


def _print(doc: dict[str, Any]) -> None:
    typer.echo(
        f"window {doc['since']} -> {doc['until']}: {doc['cycles']} cycles replayed; settings "
        f"{json.dumps(doc['settings']) if doc['settings'] else 'as recorded'}; workers "
        f"{doc['workers']}"
    )
    real, sim = doc["real"], doc["simulated"]
    rows = [
        ("moves", "moves"),
        ("streams moved", "streams_moved"),
        ("unowned stream-s", "unowned_stream_s"),
        ("  of which silent", "silent_stream_s"),
        ("max load factor", "max_load_factor"),
        ("failures", "failures"),
        ("time to recover s", "time_to_recover_s"),
        ("unrecovered", "unrecovered"),
    ]
    typer.echo(f"{'':24} {'real':>12} {'simulated':>12}")
    for label, key in rows:
        typer.echo(f"{label:24} {_cell(real[key]):>12} {_cell(sim[key]):>12}")
    for reason in sorted(set(real["moves_by_reason"]) | set(sim["moves_by_reason"])):
        label = f"  moved: {reason}"
        typer.echo(
            f"{label:24} {real['moves_by_reason'].get(reason, 0):>12} "
            f"{sim['moves_by_reason'].get(reason, 0):>12}"
        )
    d = doc["first_divergence"]
    if d is None:
        typer.echo("the simulation decided exactly what the log holds")
    else:
        typer.echo(
            f"first difference at cycle {d['cycle']} ({d['now']}): log {d['real'] or '-'}, "
            f"simulated {d['simulated'] or '-'}"
        )
        if doc["workers"] == "obedient":
            typer.echo("(obedient workers: their starts are modelled, not replayed)")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def _simulation(
    recorded: rp.Recorded,
    start: datetime,
    end: datetime,
    overrides: dict[str, Any],
    workers: str,
    start_delay: float | None,
    progress: bool | None,
) -> rp.Simulation:
    """The run's settings: the worker model (``auto``: obedient when a setting changed) and
    its start delay (default: the log's median in the window, else a second)."""
    delay = start_delay
    if delay is None:
        delay = median_start_delay(recorded.log, since=start, until=end) or 1.0
    mode = workers if workers != "auto" else ("obedient" if overrides else "recorded")
    ticker = Ticker(progress, "simulate", unit="cycles replayed")
    return rp.Simulation(
        since=start, until=end, overrides=overrides, workers=mode,  # type: ignore[arg-type]
        start_delay=timedelta(seconds=delay),
        on_cycle=lambda cycle: ticker.tick(1, cycle.seq, cycle.now),
    )  # fmt: skip


def simulate(
    since: Annotated[str, typer.Option(help="Window start, ISO 8601 (UTC if no zone).")],
    until: Annotated[str | None, typer.Option(help="Window end (default: now).")] = None,
    fail_after: Seconds = None,
    suspect_after: Seconds = None,
    migration_timeout: Seconds = None,
    rebalance_cooldown: Seconds = None,
    max_in_flight: Count = None,
    auto_rebalance: Annotated[
        bool | None,
        typer.Option("--auto-rebalance/--no-auto-rebalance", help="Default: as recorded."),
    ] = None,
    failure_detector: Annotated[
        str | None, typer.Option(help="fixed or phi (default: as recorded).")
    ] = None,
    balancer_imbalance_threshold: Fraction = None,
    balancer_imbalance_min_weight: Count = None,
    balancer_candidate_limit: Count = None,
    balancer_max_moves: Count = None,
    workers: Annotated[
        str, typer.Option(help="recorded, obedient or auto (recorded when no setting changed).")
    ] = "auto",
    start_delay: Annotated[
        float | None,
        typer.Option(
            min=0, help="Obedient workers: seconds to start a stream (default: the log's median)."
        ),
    ] = None,
    as_json: AsJson = False,
    progress: Progress = None,
    bootstrap: Bootstrap = None,
    topic_prefix: Prefix = None,
) -> None:
    """What-if: replay the recorded cycles with other settings; real beside simulated."""
    start = parse_time(since, option="--since")
    end = parse_time(until, option="--until") if until is not None else datetime.now(UTC)
    if end < start:
        raise typer.BadParameter("is before --since", param_hint="--until")
    if workers not in ("recorded", "obedient", "auto"):
        raise typer.BadParameter(
            f"{workers!r}: one of recorded, obedient, auto", param_hint="--workers"
        )
    overrides = _overrides(locals())  # the decide settings given, by name
    servers, topics = resolve_topics(bootstrap, topic_prefix)
    recorded: rp.Recorded = run(load(servers, topics, since=start))
    sim = _simulation(recorded, start, end, overrides, workers, start_delay, progress)
    try:
        doc = simulate_window(recorded, sim)
    except rp.RecordMissingError as exc:
        raise _fail(f"{exc} (cycle marks and heartbeats are kept 1 hour)") from exc
    except LookupError as exc:
        raise _fail(f"{exc} (is STREAMPLANE_RECORD_CYCLES on? marks are kept 1 hour)") from exc
    if as_json:
        typer.echo(json.dumps(doc, indent=2))
    else:
        _print(doc)


__all__ = ["simulate", "simulate_window"]
