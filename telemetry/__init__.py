"""What every long-running process shares to be seen: a Prometheus ``/metrics`` endpoint,
process and event-loop gauges, and structured (JSON) logs.

A leaf, like :mod:`resilience`: it imports nothing of the project, so the worker agent, the
read side and the control plane all use the same pieces. The metrics each process exports are
defined beside the process; docs/metrics.md lists them all.
"""
