"""Errors of the control plane's clients (the CLI, the API, the demo).

The tree::

    ControlPlaneError                root
     +-- CommandTimeoutError         no outcome event in time: is an orchestrator running?
     |                               (retriable)
     +-- CommandRejectedError        the orchestrator refused the command (reason, detail)

The orchestrator itself raises none of these: losing leadership is a step-down, not an
error, and Kafka failures are :mod:`projections.errors`.
"""

from __future__ import annotations


class ControlPlaneError(Exception):
    retriable = False


class CommandTimeoutError(ControlPlaneError):
    retriable = True


class CommandRejectedError(ControlPlaneError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"rejected ({reason}): {detail}")
        self.reason = reason
        self.detail = detail
