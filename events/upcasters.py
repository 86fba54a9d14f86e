"""Upcasters: turn an older schema version's ``data`` into the next one, one step at a time.

``UPCASTERS[(type, v)]`` maps version ``v`` data to version ``v + 1``. The codec applies the
chain up to the type's current ``SCHEMA_VERSION`` before validating, so old messages on a
topic stay readable forever. Every upcaster is pure and has a unit test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Data = dict[str, Any]
Upcaster = Callable[[Data], Data]


def upcast_heartbeat_v1_v2(data: Data) -> Data:
    """Heartbeat v1 listed running stream ids in ``streams``; v2 reports each with a state."""
    out = dict(data)
    streams = out.get("streams", [])
    if isinstance(streams, list):
        out["streams"] = [
            {"stream_id": s, "state": "running"} if not isinstance(s, dict) else s for s in streams
        ]
    return out


def upcast_rebalancecompleted_v1_v2(data: Data) -> Data:
    """RebalanceCompleted v1 did not count the planned moves that were never started (they
    went stale); v2 does (``skipped``). A v1 plan's count is unknown: it reads as 0."""
    out = dict(data)
    out.setdefault("skipped", 0)
    return out


UPCASTERS: dict[tuple[str, int], Upcaster] = {
    ("Heartbeat", 1): upcast_heartbeat_v1_v2,
    ("RebalanceCompleted", 1): upcast_rebalancecompleted_v1_v2,
}


def upcast(type_: str, version: int, current: int, data: Data) -> Data:
    """Apply the upcasters of ``type_`` from ``version`` up to ``current``."""
    while version < current:
        step = UPCASTERS.get((type_, version))
        if step is None:
            raise LookupError(f"no upcaster for {type_} v{version} -> v{version + 1}")
        data = step(data)
        version += 1
    return data
