"""Errors of the control plane.

The tree::

    ControlPlaneError                root
     +-- NotLeaderError              this process is a standby (retriable: ask again later)
     +-- LeadershipLostError         fenced or revoked mid-transaction (retriable)
     +-- CommandTimeoutError         no outcome event in time: is an orchestrator running?
     +-- CommandRejectedError        the orchestrator refused the command (reason, detail)
"""

from __future__ import annotations


class ControlPlaneError(Exception):
    retriable = False


class NotLeaderError(ControlPlaneError):
    retriable = True


class LeadershipLostError(ControlPlaneError):
    retriable = True


class CommandTimeoutError(ControlPlaneError):
    retriable = True


class CommandRejectedError(ControlPlaneError):
    def __init__(self, reason: str, detail: str):
        super().__init__(f"rejected ({reason}): {detail}")
        self.reason = reason
        self.detail = detail
