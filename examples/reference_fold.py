"""A reference fold of streamplane's control log, written from docs/contract.md alone.

Standard library only, no streamplane import: what an auditor in another team would write to
re-fold ``streamplane.events``. Reads one CloudEvents JSON record per line (the topic's values
in offset order; records are assumed valid against docs/schemas/) and prints the state as
JSON. ``python examples/reference_fold.py [log.jsonl ...]`` (standard input without a file).
``tests/unit/test_reference_fold.py`` holds it to streamplane's own fold; "§" numbers are the
sections of docs/contract.md.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from typing import Any

Event = dict[str, Any]
WINDOW, GONE = 4096, ("failed", "left")  # §2: an id is forgotten 4096 positions later
TYPES = """LeaderElected InstanceRegistered InstanceSuspected InstanceRecovered InstanceFailed
InstanceQuarantined InstanceDraining InstanceUndrained InstanceDrained InstanceDeregistered
InstanceCapacityChanged PerformanceSampled StreamRegistered StreamDeregistered StreamAssigned
StreamUnassigned StreamWaiting StreamStarted StreamFailed MigrationStarted MigrationCompleted
MigrationAborted RebalancePlanned RebalanceCompleted ConsistencyDivergenceFound
ConsistencyDivergenceRepaired CommandRejected CommandCompleted MaintenanceModeEntered
MaintenanceModeLeft InstanceEnrolled InstanceRevoked""".split()
VERSIONS = {"RebalanceCompleted": 2}  # §1: the newest schemaversion known (else 1)
DEFAULTS = {"weight": 1, "parked": False, "plan_id": None}  # §1: of the optional fields read
STATUS = {"InstanceSuspected": "suspected", "InstanceRecovered": "active",
          "InstanceFailed": "failed", "InstanceDeregistered": "left",
          "InstanceQuarantined": "quarantined"}  # fmt: skip


class Refused(Exception):
    """§4: the content breaks a rule; ``args[0]`` is the finding's kind."""


def need(ok: object, kind: str = "invalid_transition") -> None:
    if not ok:
        raise Refused(kind)


def decode(line: str) -> Event | None:
    """§1: the event (envelope, then its data with defaults), or None if it is not one."""
    try:
        rec = json.loads(line)
        if rec["type"] not in TYPES or rec.get("schemaversion", 1) > VERSIONS.get(rec["type"], 1):
            return None
        e = {**DEFAULTS, **rec["data"], "type": rec["type"], "id": rec["id"]}
        e.update(seq=rec["seq"], epoch=rec["epoch"])
    except (ValueError, KeyError, TypeError):
        return None  # not JSON, not an object, or no type, id, seq, epoch or data
    return e if isinstance(e["seq"], int) and isinstance(e["epoch"], int) else None


class Fold:
    def __init__(self) -> None:
        self.seq, self.epoch, self.leader_id = 0, 0, None
        self.ids: dict[int, str] = {}  # §2: position -> the id that passed the gate there
        self.findings: list[tuple[int, str]] = []
        self.undecodable, self.maintenance = 0, False
        self.plan: Event = {}  # the executing rebalance plan, if any
        self.instances: dict[str, Event] = {}
        self.streams: dict[str, Event] = {}
        self.held: dict[str, set[str]] = {}  # §3: the streams a server owns or receives
        self.keys: dict[str, Event] = {}  # §3: server_id -> its enrolled key's id, revoked?

    def feed(self, lines: Iterable[str]) -> Fold:
        for e in map(decode, filter(str.strip, lines)):
            self.undecodable += e is None
            if e is not None:
                self.apply(e)
        return self

    def apply(self, e: Event) -> None:
        """§2, checks 1-6 in order."""
        seq, epoch, elected = e["seq"], e["epoch"], e["type"] == "LeaderElected"
        if seq <= self.seq and self.ids.get(seq) == e["id"]:
            return  # 1: a duplicate, ignored without a finding
        if epoch < self.epoch or (elected and 0 < self.epoch >= epoch):
            self.findings.append((seq, "stale_epoch"))  # 2, 3
        elif not elected and epoch > self.epoch:
            self.findings.append((seq, "unknown_epoch"))  # 3
        elif seq <= self.seq:
            self.findings.append((seq, "conflicting_seq" if seq in self.ids else "stale_seq"))
        else:
            if seq > self.seq + 1:
                self.findings.append((seq, "seq_gap"))  # 5, and on to 6
            try:
                self.content(e["type"], e)
            except Refused as refused:
                self.findings.append((seq, refused.args[0]))
            self.seq, self.ids[seq] = seq, e["id"]
            self.ids.pop(seq - WINDOW, None)

    def inst(self, server_id: str, incarnation: str | None = None) -> Event:
        """§3: the instance (of that incarnation), else refused."""
        i = self.instances.get(server_id, {})
        need(i and incarnation in (None, i["incarnation"]), "unknown_instance")
        return i

    def load(self, server_id: str, but: str | None = None) -> int:
        return sum(self.streams[s]["weight"] for s in self.held.get(server_id, ()) if s != but)

    def room(self, server_id: str, sid: str) -> None:
        w, cap = self.streams[sid]["weight"], self.inst(server_id)["max_streams"]
        need(self.load(server_id, but=sid) + w <= cap, "capacity_exceeded")

    def home(self, sid: str, server_id: str | None, incarnation: str | None, status: str) -> None:
        """Release ``sid`` from its owner and migration target; then this is its owner."""
        s = self.streams[sid]
        for holder in (s["owner"], s["migration"] and s["migration"]["to_server"]):
            self.held.get(holder, set()).discard(sid)
        s.update(owner=server_id, incarnation=incarnation, status=status, migration=None)
        if server_id is not None:
            self.held.setdefault(server_id, set()).add(sid)

    def content(self, t: str, e: Event) -> None:
        """§4: every rule checks first, then has its effect."""
        if t == "LeaderElected":
            self.epoch, self.leader_id = e["epoch"], e["leader_id"]
        elif t == "RebalancePlanned" and not e["dry_run"]:
            need(not self.plan)
            self.plan = {"plan_id": e["plan_id"], "started": [], "completed": 0, "aborted": 0}
        elif t == "RebalanceCompleted":
            need(self.plan.get("plan_id") == e["plan_id"])
            self.plan = {}
        elif t.startswith("Maintenance"):
            self.maintenance = t == "MaintenanceModeEntered"
        elif t in ("InstanceEnrolled", "InstanceRevoked"):  # §4: no instance needed
            k, enrolled = self.keys.get(e["server_id"], {}), t == "InstanceEnrolled"
            need(enrolled or (k.get("key_id") == e["key_id"] and not k["revoked"]))
            self.keys[e["server_id"]] = {"key_id": e["key_id"], "revoked": not enrolled}
        elif t == "InstanceRegistered":
            self.register(e)
        elif t.startswith("Instance") or t == "PerformanceSampled":
            self.instance(t, e, self.inst(e["server_id"], e.get("incarnation")))
        elif t.startswith("Stream"):
            self.stream(t, e)
        elif t.startswith("Migration"):
            self.migration(t, e)
        # the others (dry runs, ConsistencyDivergence*, Command*) are on the record only

    def register(self, e: Event) -> None:
        old = self.instances.get(e["server_id"])
        if old is not None:
            need(old["incarnation"] != e["incarnation"] and old["status"] in GONE)
            need(not self.held.get(e["server_id"]))
        self.instances[e["server_id"]] = {
            "incarnation": e["incarnation"], "status": "active", "max_streams": e["max_streams"],
            "draining": bool(old and old["draining"]), "drained": False,  # draining survives
        }  # fmt: skip

    def instance(self, t: str, e: Event, i: Event) -> None:
        status, load = i["status"], self.load(e["server_id"])
        if t == "InstanceSuspected":
            need(status == "active")
        elif t == "InstanceRecovered":
            need(status in ("suspected", "quarantined"))
        elif t in ("InstanceFailed", "InstanceDeregistered"):
            need(status not in GONE)  # and nothing is released
        elif t == "InstanceQuarantined":
            need(status not in GONE and not self.held.get(e["server_id"]))
        elif t == "InstanceDrained":
            need(i["draining"] and load == 0)  # and it stays draining
        elif t == "InstanceCapacityChanged":
            need(e["max_streams"] >= load, "capacity_exceeded")
            i["max_streams"] = e["max_streams"]
        i["status"] = STATUS.get(t, status)
        i["draining"] = t == "InstanceDraining" or (i["draining"] and t != "InstanceUndrained")
        i["drained"] = t == "InstanceDrained" or (i["drained"] and t != "InstanceUndrained")

    def stream(self, t: str, e: Event) -> None:
        sid = e["stream_id"]
        if t == "StreamRegistered":
            need(sid not in self.streams)
            self.streams[sid] = {"weight": e["weight"], "status": "unassigned", "owner": None}
            self.streams[sid].update(incarnation=None, migration=None, failed_on=[])
            return
        need(sid in self.streams, "unknown_stream")
        s = self.streams[sid]
        if t == "StreamDeregistered":
            self.home(sid, None, None, "")
            del self.streams[sid]
        elif t == "StreamAssigned":
            need(self.inst(e["server_id"], e["incarnation"])["status"] == "active")
            owner = self.instances.get(s["owner"] or "", {})
            live = (
                owner and owner["incarnation"] == s["incarnation"] and owner["status"] not in GONE
            )
            need(s["migration"] is None and not live, "two_owners")
            self.room(e["server_id"], sid)
            self.home(sid, e["server_id"], e["incarnation"], "assigned")
        elif t == "StreamUnassigned":
            self.home(sid, None, None, "unassigned")
        elif t == "StreamWaiting":
            need(s["status"] == "unassigned")  # and nothing changes
        elif t == "StreamStarted":
            need((s["owner"], s["incarnation"]) == (e["server_id"], e["incarnation"]))
            need(s["status"] == "assigned")
            s["status"] = "running"
        elif t == "StreamFailed":
            need(s["owner"] == e["server_id"] and s["migration"] is None)
            self.home(sid, None, None, "failed" if e["parked"] else "unassigned")
            s["failed_on"] += [] if e["server_id"] in s["failed_on"] else [e["server_id"]]

    def migration(self, t: str, e: Event) -> None:
        sid = e["stream_id"]
        need(sid in self.streams, "unknown_stream")
        s, to = self.streams[sid], e.get("to_server")
        if t == "MigrationStarted":
            need(s["owner"] == e["from_server"] and s["status"] == "running")
            need(to != e["from_server"])
            need(self.inst(to, e["to_incarnation"])["status"] == "active")
            self.room(to, sid)
            self.held.setdefault(to, set()).add(sid)  # the target's reserved slot
            keys = ("migration_id", "to_server", "to_incarnation", "plan_id")
            s.update(status="migrating", migration={k: e[k] for k in keys})
            if self.plan and self.plan["plan_id"] == e["plan_id"]:
                self.plan["started"].append(sid)
            return
        m = s["migration"] or {}
        need(m.get("migration_id") == e["migration_id"])
        if t == "MigrationCompleted":
            need(self.inst(m["to_server"], m["to_incarnation"])["status"] not in GONE)
            self.home(sid, m["to_server"], m["to_incarnation"], "running")
        else:  # MigrationAborted: the target lets go, the owner (even a gone one) stays
            self.held.get(m["to_server"], set()).discard(sid)
            s.update(status="running", migration=None)
        if self.plan and self.plan["plan_id"] == m["plan_id"]:
            self.plan["completed" if t == "MigrationCompleted" else "aborted"] += 1

    def state(self) -> Event:
        """§7: what an auditor compares."""
        owners = [s["owner"] for s in self.streams.values()]
        instances = {k: {**i, "load": self.load(k), "owned": owners.count(k)}
                     for k, i in sorted(self.instances.items())}  # fmt: skip
        plan = self.plan and {**self.plan, "started": sorted(self.plan["started"])}
        return {
            "seq": self.seq, "epoch": self.epoch, "leader_id": self.leader_id,
            "findings": [list(f) for f in self.findings], "finding_count": len(self.findings),
            "maintenance": self.maintenance, "rebalance": plan or None,
            "undecodable": self.undecodable, "instances": instances, "enrolled": self.keys,
            "streams": dict(sorted(self.streams.items())),
        }  # fmt: skip


def main(paths: list[str]) -> None:
    fold = Fold()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            fold.feed(f)
    json.dump(fold.feed(() if paths else sys.stdin).state(), sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main(sys.argv[1:])
