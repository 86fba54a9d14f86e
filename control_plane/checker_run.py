"""One full consistency check: replay the log once, read every view, run the pure checker.

Used by ``streamplane check`` (:mod:`control_plane.cli.check`) and the API's ``POST
/check/full``. The log is replayed **once** from offset 0 with the shared fold (the check
trusts no snapshot); a projection standing exactly at the end of that replay is compared
with its state at no extra cost, one that lags is compared at its own as-of point
(:mod:`control_plane.drift_io`, a second, shorter fold). Progress of a long replay goes to
``on_progress``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import NamedTuple

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from control_plane.checker_io import read_acknowledged, read_desired, read_heartbeats
from control_plane.decide.checker import (
    CheckConfig,
    CheckViews,
    ConsistencyChecker,
    ConsistencyReport,
)
from control_plane.drift_io import (
    check_assignments,
    check_instances_table,
    check_read_model,
    read_assignments,
    read_faust_table,
    read_model_rows,
)
from events.topics import Topics, changelog_topic, projector_app_id
from kafka_auth import Brokers
from projections.fold.drift import (
    AssignmentsView,
    DriftReport,
    Projection,
    ReadModelRows,
    Tail,
    compare_assignments,
    compare_read_model,
    missing_read_model,
)
from projections.io.read_store import ReadModelSettings
from projections.io.replay import ProgressCallback, ReplayResult, ReplaySettings, replay


class CheckSettings(BaseSettings):
    """The checker's bounds and reads; env ``STREAMPLANE_CHECK_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="STREAMPLANE_CHECK_", frozen=True)

    #: seconds an owner may be silent (no heartbeat of its incarnation) before its streams
    #: count as orphaned; above the failure detector's fail_after, so failovers are not named
    silent_after: float = Field(default=30.0, gt=0)
    #: seconds a stream may wait for a home while an instance has room for it
    unassigned_after: float = Field(default=60.0, gt=0)
    #: seconds a heartbeat says what runs now (older ones are ignored for mismatches)
    heartbeat_fresh: float = Field(default=15.0, gt=0)
    #: how far back the heartbeats topic is read, seconds (at least ``silent_after``)
    heartbeat_window: float = Field(default=300.0, gt=0)
    #: seconds to wait for the orchestrator to answer a repair command
    command_wait: float = Field(default=60.0, gt=0)
    #: the Faust projector's app id when it was set (``STREAMPLANE_PROJECTOR_ID``, the
    #: projector's own setting): its tables' changelog topics are named after it
    projector_id: str | None = Field(default=None, validation_alias="STREAMPLANE_PROJECTOR_ID")

    def config(self) -> CheckConfig:
        """The pure checker's bounds."""
        return CheckConfig(
            silent_after=timedelta(seconds=self.silent_after),
            unassigned_after=timedelta(seconds=self.unassigned_after),
            heartbeat_fresh=timedelta(seconds=self.heartbeat_fresh),
        )


#: the Faust projector's tables the check compares (by their changelog topics)
FAUST_TABLES = ("assignments", "instances")
FAUST = Projection.FAUST_TABLES


class CheckRun(NamedTuple):
    """A check's report, the replay it was made on, and the views read."""

    report: ConsistencyReport
    head: ReplayResult
    views: CheckViews


async def run_check(
    settings: ReadModelSettings,
    check: CheckSettings,
    *,
    read_model: bool = True,
    assignments: bool = True,
    faust_tables: bool = True,
    on_progress: ProgressCallback | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> CheckRun:
    """Replay, read the views, check (see the module docstring)."""
    bootstrap, topics = settings.kafka_access, Topics(settings.topic_prefix)
    timeout = settings.kafka_timeout
    cfg = ReplaySettings(kafka_timeout=timeout)
    # the read model first: its rows then lie at or before the end the replay reaches
    rows = await read_model_rows(settings) if read_model else None
    # the assignments topic is read while the log replays (mostly waiting on Kafka): its
    # as-of seq then lies at or before the replay's end, and it is compared there
    records = (
        asyncio.create_task(read_assignments(bootstrap, topics.assignments, kafka_timeout=timeout))
        if assignments
        else None
    )
    # so are the Faust projector's tables (their changelogs; None: no projector ran)
    tables = {
        name: asyncio.create_task(
            read_faust_table(bootstrap, faust_changelog(topics, check, name), kafka_timeout=timeout)
        )
        for name in (FAUST_TABLES if faust_tables else ())
    }
    try:
        head = await replay(bootstrap, topics.events, on_progress=on_progress, settings=cfg)
    except BaseException:
        for task in (records, *tables.values()):
            if task is not None:
                task.cancel()
        raise
    projections: list[DriftReport] = []
    if read_model:
        projections.append(await read_model_report(settings, head, rows))
    if records is not None:
        view = await records
        projections.append(
            await assignments_report(bootstrap, topics, head, view, kafka_timeout=timeout)
        )
    for name, task in tables.items():
        table = await task
        if table is None:
            continue
        if name == "assignments":
            drift = await assignments_report(
                bootstrap, topics, head, table, kafka_timeout=timeout, projection=FAUST
            )
        else:  # folded again to just before its as-of seq (a table may show half an event)
            drift = await check_instances_table(bootstrap, topics, table, kafka_timeout=timeout)
        projections.append(drift)
    desired = await read_desired(bootstrap, topics, kafka_timeout=timeout)
    window = timedelta(seconds=max(check.heartbeat_window, check.silent_after))
    heartbeats = await read_heartbeats(
        bootstrap, topics, since=clock() - window, kafka_timeout=timeout
    )
    acknowledged = await read_acknowledged(bootstrap, topics, head.state, kafka_timeout=timeout)
    views = CheckViews(clock(), heartbeats, desired, tuple(projections), acknowledged)
    report = ConsistencyChecker(check.config()).check(head.state, views)
    return CheckRun(report, head, views)


def faust_changelog(topics: Topics, check: CheckSettings, table: str = "assignments") -> str:
    """The changelog topic of the Faust projector's ``table``."""
    return changelog_topic(projector_app_id(topics.prefix, check.projector_id), table)


async def wait_for_table(
    bootstrap: Brokers,
    topics: Topics,
    check: CheckSettings,
    seq: int,
    *,
    kafka_timeout: float,
    table: str = "assignments",
) -> bool:
    """Wait (at most ``check.command_wait``) until the Faust ``table`` shows ``seq`` or
    later: the projector has carried out the repairs logged up to it. False: it did not."""
    deadline = asyncio.get_running_loop().time() + check.command_wait
    topic = faust_changelog(topics, check, table)
    while True:
        view = await read_faust_table(bootstrap, topic, kafka_timeout=kafka_timeout)
        if view is not None and view.as_of_seq >= seq:
            return True
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.5)


async def read_model_report(
    settings: ReadModelSettings, head: ReplayResult, rows: ReadModelRows | None
) -> DriftReport:
    """The read model (``rows``, read before the replay) against the replay when it stands
    at its end, else against the log folded to its own point."""
    if rows is None:
        return missing_read_model(head_seq=head.state.seq, lag=head.offset)
    if rows.next_offset == head.offset:
        return compare_read_model(head.state, rows, head_seq=head.state.seq, lag=0)
    return await check_read_model(settings)


async def assignments_report(
    bootstrap: Brokers,
    topics: Topics,
    head: ReplayResult,
    view: AssignmentsView,
    *,
    kafka_timeout: float,
    projection: Projection = Projection.ASSIGNMENTS,
) -> DriftReport:
    """The assignments topic or the Faust table (``view``) against the replay when its
    as-of seq is the log's last, else against the log folded to its as-of seq (the topic is
    read again there; the table's view is kept)."""
    if view.as_of_seq == head.state.seq:
        return compare_assignments(head.state, Tail(head.state), view, projection)
    again = None if projection is Projection.ASSIGNMENTS else view
    report, _ = await check_assignments(
        bootstrap, topics, kafka_timeout=kafka_timeout, view=again, projection=projection
    )
    return report


__all__ = [
    "CheckRun",
    "CheckSettings",
    "assignments_report",
    "faust_changelog",
    "read_model_report",
    "run_check",
    "wait_for_table",
]
