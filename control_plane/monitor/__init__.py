"""The monitor process: the seed's HealthMonitor and AlertManager as a running service.

``streamplane monitor`` follows the control log and the cluster's signals, runs the pure
alert engine (:mod:`control_plane.alerts`) every ``monitor_interval`` seconds and publishes
each transition to ``<prefix>.alerts`` (and to webhooks). docs/alerts.md describes it.
"""

from control_plane.monitor.runner import run_monitor
from control_plane.monitor.service import HealthMonitor
from control_plane.monitor.settings import MonitorSettings

__all__ = ["HealthMonitor", "MonitorSettings", "run_monitor"]
