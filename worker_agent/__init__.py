"""The worker agent: heartbeats, desired-state reconciliation, stream handlers, resilience.

See ``docs/worker.md``.
"""

from worker_agent.agent import WorkerAgent
from worker_agent.connectivity import Mode
from worker_agent.handlers import StreamHandler, StreamHealth, load_handler
from worker_agent.settings import WorkerSettings

__all__ = ["Mode", "StreamHandler", "StreamHealth", "WorkerAgent", "WorkerSettings", "load_handler"]
