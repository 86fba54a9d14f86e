"""What a drift check reports: :class:`Drift` (one key that disagrees) and :class:`DriftReport`."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

from projections.fold.assignments import JsonDict

#: the divergence kind of every item here (DESIGN.md's classification)
PROJECTION_DRIFT = "projection_drift"
#: ``reason`` of the assignment records a repair republishes
DRIFT_REPAIR_REASON = "drift_repair"


class Projection(StrEnum):
    """Which projection drifted."""

    READ_MODEL = "read_model"
    ASSIGNMENTS = "assignments"
    #: the Faust projector's ``assignments`` table (its changelog topic)
    FAUST_TABLES = "faust_tables"


class Drift(NamedTuple):
    """One key of a projection that disagrees with the log at ``as_of_seq``; ``expected``
    and ``found`` are plain JSON (None: no row / no record / tombstone)."""

    projection: Projection
    table: str
    key: str
    expected: Any
    found: Any
    #: the fields that differ (empty when the whole row is missing or unexpected)
    fields: tuple[str, ...]
    as_of_seq: int
    kind: str = PROJECTION_DRIFT

    def to_json(self) -> JsonDict:
        """Plain JSON (for ``--json`` and logs)."""
        return {**self._asdict(), "projection": self.projection.value, "fields": list(self.fields)}


class DriftReport(NamedTuple):
    """The outcome of comparing one projection with the log."""

    projection: Projection
    #: the seq the projection stands at (and was compared at)
    as_of_seq: int
    #: the seq at the end of the log
    head_seq: int
    #: how far behind: log records (read model) or unpublished stream changes (assignments)
    lag: int
    #: keys compared
    checked: int
    drifts: tuple[Drift, ...]

    @property
    def clean(self) -> bool:
        """No drift (lag alone is fine)."""
        return not self.drifts

    def to_json(self) -> JsonDict:
        """Plain JSON (for ``--json``)."""
        data = self._asdict()
        data["projection"] = self.projection.value
        data["drifts"] = [d.to_json() for d in self.drifts]
        data["clean"] = self.clean
        return data
