"""What a consistency check reports: :class:`Divergence` and :class:`ConsistencyReport`.

A divergence is one thing that disagrees with ``fold(control log)``, the only truth: a view
(read model, assignments topic, desired topic), a worker (its latest heartbeat), or the log
itself (an event the fold refused). The report counts them per kind, keeps a few examples
of each, and turns them into a ``consistency_score`` in [0, 1] that SystemHealth takes in
(:func:`projections.fold.health.system_health`).
"""

from __future__ import annotations

from collections import Counter
from enum import StrEnum
from typing import Any, NamedTuple


class DivergenceKind(StrEnum):
    """The kinds a check names (docs/consistency.md says what each means and its repair)."""

    #: the owner is gone or silent, or it waits for a home while one has room
    ORPHANED = "orphaned"
    #: running on two instances outside a migration (from the heartbeats)
    DUPLICATED = "duplicated"
    #: a worker runs what it should not, or not what it should (its latest heartbeat)
    WORKER_MISMATCH = "worker_mismatch"
    #: a projection (read model, assignments topic) disagrees with the log at its as-of seq
    PROJECTION_DRIFT = "projection_drift"
    #: the newest ``<prefix>.desired`` record of a server is not the set the fold gives it
    DESIRED_DRIFT = "desired_drift"
    #: the log skips seqs (the fold applied the event and noted the hole)
    SEQ_GAP = "seq_gap"
    #: an event repeats a seq already applied (refused)
    SEQ_REPEAT = "seq_repeat"
    #: an event written with a fenced or never-elected epoch (refused)
    STALE_EPOCH = "stale_epoch"
    #: an instance holds or runs more than its capacity
    CAPACITY_EXCEEDED = "capacity_exceeded"
    #: any other event the fold refused (two owners, unknown stream, invalid transition)
    REFUSED_EVENT = "refused_event"


#: the ``view`` of a divergence found in the log itself (an event the fold refused or a
#: hole it noted): the log is append-only, so the repair acknowledges it (docs/consistency.md)
LOG_VIEW = "log"
#: examples kept per kind in a report (all are counted)
EXAMPLES_PER_KIND = 10


class Divergence(NamedTuple):
    """One disagreement. ``view`` says where it was seen (``read_model``, ``assignments``,
    ``desired``, ``heartbeats``, ``log``, ``state``); ``key`` is the row, record or event."""

    kind: DivergenceKind
    view: str
    stream_id: str | None = None
    server_id: str | None = None
    key: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        """Plain JSON (``--json``, the API)."""
        return {**self._asdict(), "kind": self.kind.value}


class ConsistencyReport(NamedTuple):
    """The outcome of one check, as of ``as_of_seq`` of the log."""

    as_of_seq: int
    #: items compared per view (streams, instances, records, heartbeats, findings)
    checked: dict[str, int]
    divergences: tuple[Divergence, ...]
    #: projections lagging behind the log (not drift): view -> how far
    lag: dict[str, int]

    @property
    def clean(self) -> bool:
        return not self.divergences

    @property
    def counts(self) -> dict[str, int]:
        """Divergences per kind (kinds with none left out)."""
        return dict(sorted(Counter(d.kind.value for d in self.divergences).items()))

    def examples(self, per_kind: int = EXAMPLES_PER_KIND) -> dict[str, list[Divergence]]:
        """The first few divergences of each kind."""
        out: dict[str, list[Divergence]] = {}
        for d in self.divergences:
            kept = out.setdefault(d.kind.value, [])
            if len(kept) < per_kind:
                kept.append(d)
        return out

    @property
    def consistency_score(self) -> float:
        """1.0 when clean; otherwise below 0.9 (any divergence costs something), falling with
        the share of checked streams and instances affected, and 0.1 per log finding."""
        return consistency_score(self.divergences, self.checked.get("entities", 0))

    def to_json(self, per_kind: int = EXAMPLES_PER_KIND) -> dict[str, Any]:
        """Plain JSON: counts, examples, score, clean."""
        return {
            "as_of_seq": self.as_of_seq,
            "clean": self.clean,
            "consistency_score": self.consistency_score,
            "counts": self.counts,
            "checked": dict(self.checked),
            "lag": dict(self.lag),
            "examples": {k: [d.to_json() for d in ds] for k, ds in self.examples(per_kind).items()},
        }


def consistency_score(divergences: tuple[Divergence, ...], entities: int) -> float:
    """The score of a set of divergences over ``entities`` checked streams and instances."""
    if not divergences:
        return 1.0
    affected = {(d.stream_id or "", d.server_id or "") for d in divergences if d.view != LOG_VIEW}
    logged = sum(1 for d in divergences if d.view == LOG_VIEW)
    share = len(affected) / max(1, entities)
    return round(max(0.0, min(0.9, 0.9 - share - 0.1 * logged)), 6)


__all__ = [
    "EXAMPLES_PER_KIND",
    "LOG_VIEW",
    "ConsistencyReport",
    "Divergence",
    "DivergenceKind",
    "consistency_score",
]
