"""Errors raised by the balancer.

The tree::

    BalancerError                   root; never retriable (the same input fails the same way)
     +-- BalancerInputError         an input view breaks a rule: duplicate id, weight below 1,
                                    negative capacity, perf_factor outside (0, 1]

The balancer is pure: an error means the caller built a bad view, and retrying with the same
views cannot help. Each error names the field and the offending value.
"""

from __future__ import annotations


class BalancerError(Exception):
    """Root of the balancer's errors."""

    retriable = False


class BalancerInputError(BalancerError, ValueError):
    """An instance or stream view is invalid; ``field`` and ``value`` say which and why."""

    retriable = False

    def __init__(self, message: str, *, field: str, value: object) -> None:
        super().__init__(f"{message} ({field}={value!r})")
        self.field = field
        self.value = value
