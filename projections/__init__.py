"""Projections: the one pure fold and everything that materialises it."""

from projections.fold import apply, fold, fold_from
from projections.health import SystemHealth, system_health
from projections.state import (
    AssignmentStatus,
    ClusterState,
    EnhancedInstance,
    Finding,
    FindingKind,
    HealthStatus,
    InstanceStatus,
    MigrationState,
    StreamAssignment,
)
