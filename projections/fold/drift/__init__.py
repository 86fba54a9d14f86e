"""Pure: projection drift, i.e. a projection that disagrees with ``fold(log prefix)``.

A projection may be *behind* the log (it has not folded the newest events yet): that is lag,
not drift. So each projection is compared with the fold of the log **at its own as-of
point**, and how far behind it is gets reported separately:

- **PostgreSQL read model**: the tracking row says exactly where it stands (``next_offset``);
  the shell folds ``log[:next_offset]`` and hands it here with the rows
  (:func:`compare_read_model`). Lag = log records after ``next_offset``.
- **``<prefix>.assignments``** (one record per stream, compacted): its as-of is the highest
  ``as_of_seq`` of any record read (:func:`latest_assignments`); the shell folds the log up to
  that seq (:func:`projections.fold.fold_until`) and keeps the events after it (the *tail*).
  :func:`compare_assignments` accepts a record that matches the state at the as-of seq, or
  one that already shows a later change from the tail (a tombstone carries no seq, so a
  deregistration published after the last valued record looks "ahead"). Lag = streams the
  tail changed whose new value is not published yet.

Only content is compared, never bookkeeping that depends on batching: a stream row's
``reason``/``as_of_seq``, an instance row's ``as_of_seq``, a record's ``reason``/``epoch``/
``time`` (:func:`projections.fold.assignments.same_assignment`). Every difference is a
:class:`Drift` (kind ``projection_drift``) naming the projection, the table and key, what the
log says and what was found.

The report's types are in :mod:`~projections.fold.drift.report`, the read model's comparison
in :mod:`~projections.fold.drift.read_model`, the assignments topic's in
:mod:`~projections.fold.drift.topic`; everything is imported from here.
"""

from projections.fold.drift.read_model import (
    ReadModelRows,
    compare_read_model,
    expected_instance_row,
    expected_stream_row,
    missing_read_model,
)
from projections.fold.drift.report import (
    DRIFT_REPAIR_REASON,
    PROJECTION_DRIFT,
    Drift,
    DriftReport,
    Projection,
)
from projections.fold.drift.topic import (
    AssignmentsView,
    Tail,
    assignment_repairs,
    compare_assignments,
    compare_instances,
    fold_tail,
    instance_values_after,
    latest_assignments,
)

__all__ = [
    "DRIFT_REPAIR_REASON",
    "PROJECTION_DRIFT",
    "AssignmentsView",
    "Drift",
    "DriftReport",
    "Projection",
    "ReadModelRows",
    "Tail",
    "assignment_repairs",
    "compare_assignments",
    "compare_instances",
    "compare_read_model",
    "expected_instance_row",
    "expected_stream_row",
    "fold_tail",
    "instance_values_after",
    "latest_assignments",
    "missing_read_model",
]
