"""The monitor process: the seed's HealthMonitor and AlertManager as a running service."""
