"""The seed's ConsistencyChecker and ConsistencyErrorHandler, pure (docs/consistency.md).

:mod:`~control_plane.decide.checker.checker` compares ``fold(control log)`` with every view
handed to it as plain values; :mod:`~control_plane.decide.checker.report` is what it
reports; :mod:`~control_plane.decide.checker.repair` turns a report into repairs, each a
command that becomes events. The I/O that gathers the views is
:mod:`control_plane.checker_io` and :mod:`control_plane.checker_run`.
"""

from control_plane.decide.checker.checker import CheckConfig, ConsistencyChecker
from control_plane.decide.checker.repair import (
    RepairPlan,
    acknowledged_id,
    plan_repairs,
    repair_reported,
    to_command,
)
from control_plane.decide.checker.report import (
    LOG_VIEW,
    ConsistencyReport,
    Divergence,
    DivergenceKind,
)
from control_plane.decide.checker.views import CheckViews, LastHeartbeat, ideal_views

__all__ = [
    "LOG_VIEW",
    "CheckConfig",
    "CheckViews",
    "ConsistencyChecker",
    "ConsistencyReport",
    "Divergence",
    "DivergenceKind",
    "LastHeartbeat",
    "RepairPlan",
    "acknowledged_id",
    "ideal_views",
    "plan_repairs",
    "repair_reported",
    "to_command",
]
