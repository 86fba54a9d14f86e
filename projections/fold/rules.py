"""The fold's rules 1-3 (duplicates, epochs, seq), and the findings the fold keeps.

The one driver (:func:`projections.fold.driver.fold_into`) judges every event with
:func:`check` before its transition runs; ``apply`` and the ``Folder`` both go through it.
"""

from __future__ import annotations

from events import control as ev
from events.base import ControlEvent
from projections.fold.state import Finding, FindingKind

#: how many recent seq -> id pairs are kept to tell a duplicate from a conflict
RECENT_WINDOW = 4096
#: findings kept in the state (all are counted)
FINDINGS_KEPT = 256


def check(
    event: ControlEvent, seq: int, epoch: int, known: str | None
) -> tuple[bool, tuple[FindingKind, str] | None]:
    """Rules 1-3 against the state's ``seq`` and ``epoch`` (``known``: the id of the event
    already applied at ``event.seq``, if remembered): whether the event's content may be
    applied, and the finding to record first, if any."""
    if event.seq <= seq and known == event.id:
        return False, None  # exact duplicate: idempotent
    if event.epoch < epoch:
        return False, (FindingKind.STALE_EPOCH, f"epoch {event.epoch} < {epoch}")
    if isinstance(event, ev.LeaderElected):
        if epoch and event.epoch <= epoch:
            return False, (FindingKind.STALE_EPOCH, f"epoch {event.epoch} not above {epoch}")
    elif event.epoch > epoch:
        return False, (FindingKind.UNKNOWN_EPOCH, f"epoch {event.epoch} never elected")
    if event.seq <= seq:
        kind = FindingKind.CONFLICTING_SEQ if known is not None else FindingKind.STALE_SEQ
        return False, (kind, f"seq {event.seq} already applied")
    if event.seq != seq + 1:
        return True, (FindingKind.SEQ_GAP, f"expected seq {seq + 1}, got {event.seq}")
    return True, None


def with_finding(
    findings: tuple[Finding, ...], event: ControlEvent, kind: FindingKind, detail: str
) -> tuple[Finding, ...]:
    """``findings`` with one more about ``event``, keeping the newest ``FINDINGS_KEPT``."""
    finding = Finding(event.seq, kind, event.id, type(event).__name__, detail)
    return (*findings[-(FINDINGS_KEPT - 1) :], finding)
