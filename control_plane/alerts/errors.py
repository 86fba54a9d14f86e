"""Errors of the alert engine: only bad input (a caller's bug), never a condition it watches.

The tree::

    AlertError            root; ``retriable`` is False: the same input fails the same way
     +-- InvalidConfig    a threshold, window or count out of range (names field and value)
     +-- InvalidInput     a metric sample that is not a finite number, or a naive ``now``

Both also derive from ``ValueError``, so a caller that only knows Python's tree still catches them.
"""

from __future__ import annotations


class AlertError(Exception):
    """Root of the alert engine's errors."""

    retriable = False


class InvalidConfig(AlertError, ValueError):
    """A configuration value out of range; the message names the field and the value."""


class InvalidInput(AlertError, ValueError):
    """An observation the engine cannot judge; the message names the field and the value."""
