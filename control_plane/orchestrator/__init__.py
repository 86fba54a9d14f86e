"""The orchestrator process: the imperative shell around :mod:`control_plane.decide`."""

from control_plane.orchestrator.runner import run_orchestrator, run_until_stopped
from control_plane.orchestrator.service import EnhancedStreamOrchestrator

__all__ = ["EnhancedStreamOrchestrator", "run_orchestrator", "run_until_stopped"]
