"""Write the golden control logs and the states they fold to.

    python -m tests.golden.regen            # rewrite every <name>.jsonl and <name>.state.json
    python -m tests.golden.regen --states   # keep the logs, refold them into the states

Each scenario below is a hand-written history (one CloudEvents record per line, written by
``events.encode``). After regenerating, READ ``git diff tests/golden``: a changed expected
state means the fold changed behaviour, which must be intended (see docs/projections.md).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from events import ControlEvent, decode_event, encode
from events import control as ev
from projections.fold import fold
from projections.fold.canonical import state_dumps

HERE = Path(__file__).parent
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class Log:
    """Builds a history: seq, epoch, ids and times follow unless a test overrides them."""

    def __init__(self) -> None:
        self.events: list[ControlEvent] = []
        self.seq = 0
        self.epoch = 0

    def add(self, cls: type[ControlEvent], **fields: Any) -> ControlEvent:
        seq = fields.pop("seq", self.seq + 1)
        epoch = fields.pop("epoch", self.epoch)
        event = cls(
            id=fields.pop("id", f"ev-{seq}"),
            source=fields.pop("source", "streamplane/orchestrator"),
            time=T0 + timedelta(seconds=len(self.events)),
            seq=seq,
            epoch=epoch,
            **fields,
        )
        self.events.append(event)
        self.seq = max(self.seq, seq)
        return event

    def leader(self, leader_id: str) -> None:
        self.epoch += 1
        self.add(ev.LeaderElected, leader_id=leader_id)

    def instance(self, server_id: str, incarnation: str, capacity: int) -> None:
        self.add(
            ev.InstanceRegistered,
            server_id=server_id,
            incarnation=incarnation,
            ip="10.0.0.1",
            port=7000,
            max_streams=capacity,
        )

    def assign(self, stream_id: str, server_id: str, incarnation: str, reason: str) -> None:
        self.add(
            ev.StreamAssigned,
            stream_id=stream_id,
            server_id=server_id,
            incarnation=incarnation,
            reason=reason,
        )

    def started(self, stream_id: str, server_id: str, incarnation: str) -> None:
        self.add(
            ev.StreamStarted, stream_id=stream_id, server_id=server_id, incarnation=incarnation
        )


def _cluster(log: Log) -> None:
    """w1 (capacity 3) and w2 (capacity 2); cam-1 and cam-3 (weight 2) on w1, cam-2 on w2."""
    log.leader("orch-a")
    log.instance("w1", "w1.a", 3)
    log.instance("w2", "w2.a", 2)
    log.add(ev.StreamRegistered, stream_id="cam-1")
    log.add(ev.StreamRegistered, stream_id="cam-2", priority=5, params={"fps": "25"})
    log.add(ev.StreamRegistered, stream_id="cam-3", weight=2)
    log.assign("cam-1", "w1", "w1.a", "new_stream")
    log.assign("cam-2", "w2", "w2.a", "new_stream")
    log.assign("cam-3", "w1", "w1.a", "new_stream")
    log.started("cam-1", "w1", "w1.a")
    log.started("cam-2", "w2", "w2.a")
    log.started("cam-3", "w1", "w1.a")


def basic() -> Log:
    """Register, assign within capacity, start, sample, complete a command."""
    log = Log()
    _cluster(log)
    metrics = {"cpu_percent": 40.0, "memory_mb": 512.0, "avg_latency_ms": 8.5, "error_rate": 0.0}
    log.add(ev.PerformanceSampled, server_id="w1", metrics=metrics)
    log.add(
        ev.CommandCompleted, command_id="cmd-1", command_type="RegisterStream", causationid="cmd-1"
    )
    return log


def failover() -> Log:
    """w1 fails: cam-1 moves to w2, cam-3 waits for capacity; w1 comes back and takes it."""
    log = Log()
    _cluster(log)
    log.add(ev.InstanceSuspected, server_id="w1", incarnation="w1.a")
    log.add(ev.InstanceFailed, server_id="w1", incarnation="w1.a")
    log.assign("cam-1", "w2", "w2.a", "instance_failed")
    log.add(ev.StreamUnassigned, stream_id="cam-3", server_id="w1", reason="no_capacity")
    log.instance("w1", "w1.b", 3)
    log.assign("cam-3", "w1", "w1.b", "capacity_returned")
    log.started("cam-1", "w2", "w2.a")
    log.started("cam-3", "w1", "w1.b")
    return log


def migration() -> Log:
    """Make-before-break: a planned move completes, another is aborted, the plan closes."""
    log = Log()
    _cluster(log)
    log.instance("w3", "w3.a", 4)
    move = {"from_server": "w1", "to_server": "w3"}
    log.add(
        ev.RebalancePlanned,
        plan_id="plan-1",
        dry_run=False,
        moves=(
            ev.PlannedMove(stream_id="cam-3", **move),
            ev.PlannedMove(stream_id="cam-1", **move),
        ),
    )
    deadline = T0 + timedelta(minutes=5)
    for stream_id, migration_id in (("cam-3", "mig-1"), ("cam-1", "mig-2")):
        log.add(
            ev.MigrationStarted,
            stream_id=stream_id,
            migration_id=migration_id,
            to_incarnation="w3.a",
            deadline=deadline,
            reason="rebalance",
            plan_id="plan-1",
            **move,
        )
    log.add(ev.MigrationCompleted, stream_id="cam-3", migration_id="mig-1")
    log.add(ev.MigrationAborted, stream_id="cam-1", migration_id="mig-2", reason="timeout")
    log.add(ev.RebalanceCompleted, plan_id="plan-1", completed=1, aborted=1)
    # a second move left in flight: the target holds its capacity, the owner keeps the stream
    log.add(
        ev.MigrationStarted,
        stream_id="cam-2",
        migration_id="mig-3",
        from_server="w2",
        to_server="w3",
        to_incarnation="w3.a",
        deadline=deadline,
        reason="drain",
    )
    return log


def zombie_leader() -> Log:
    """orch-b takes over (epoch 2); orch-a, not yet fenced, still writes epoch 1: no effect."""
    log = Log()
    _cluster(log)
    log.leader("orch-b")
    zombie_seq = log.seq  # orch-a, unaware of LeaderElected(2), writes the same next seq
    log.add(
        ev.StreamAssigned,
        id="zombie-1",
        source="streamplane/orchestrator-a",
        seq=zombie_seq,
        epoch=1,
        stream_id="cam-2",
        server_id="w1",
        incarnation="w1.a",
        reason="rebalance",
    )
    log.add(ev.MaintenanceModeEntered, reason="mass_failure")
    log.add(
        ev.StreamDeregistered,
        id="zombie-2",
        source="streamplane/orchestrator-a",
        seq=zombie_seq + 1,  # the zombie numbers on by itself
        epoch=1,
        stream_id="cam-1",
        reason="operator",
    )
    log.add(ev.MaintenanceModeLeft, reason="operator")
    return log


def gap_and_conflicts() -> Log:
    """A lost event (seq gap), an exact duplicate, a conflicting seq, and refused content."""
    log = Log()
    _cluster(log)
    log.seq += 1  # seq 13 never reaches the log
    log.add(ev.StreamRegistered, stream_id="cam-4")
    log.events.append(log.events[3])  # exact duplicate of seq 4: ignored
    log.add(ev.StreamRegistered, id="other-5", seq=5, stream_id="cam-5")  # conflicting seq
    log.assign("cam-4", "w1", "w1.a", "new_stream")  # w1 holds 3/3: capacity_exceeded
    log.assign("cam-2", "w1", "w1.a", "rebalance")  # owned by live w2: two_owners
    log.started("cam-9", "w1", "w1.a")  # unknown_stream
    log.add(ev.InstanceSuspected, server_id="w9", incarnation="w9.a")  # unknown_instance
    log.add(ev.InstanceCapacityChanged, server_id="w1", max_streams=2)  # below its load
    log.add(ev.InstanceCapacityChanged, server_id="w1", max_streams=4)
    log.assign("cam-4", "w1", "w1.a", "capacity_returned")
    return log


SCENARIOS: dict[str, Callable[[], Log]] = {
    "basic": basic,
    "failover": failover,
    "migration": migration,
    "zombie_leader": zombie_leader,
    "gap_and_conflicts": gap_and_conflicts,
}


def write_log(name: str, events: list[ControlEvent]) -> None:
    lines = b"".join(encode(e) + b"\n" for e in events)
    (HERE / f"{name}.jsonl").write_bytes(lines)


def read_log(path: Path) -> list[ControlEvent]:
    return [decode_event(line) for line in path.read_bytes().splitlines() if line.strip()]


def expected_bytes(events: list[ControlEvent]) -> bytes:
    return state_dumps(fold(events), indent=True) + b"\n"


def main(argv: list[str]) -> int:
    states_only = "--states" in argv
    for name, scenario in SCENARIOS.items():
        if not states_only:
            write_log(name, scenario().events)
        events = read_log(HERE / f"{name}.jsonl")
        (HERE / f"{name}.state.json").write_bytes(expected_bytes(events))
        print(f"{name}: {len(events)} events")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
