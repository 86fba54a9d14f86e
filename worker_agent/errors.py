"""Errors raised by the worker agent.

The tree::

    WorkerError                     root
     +-- ConfigError                bad settings or an unknown handler (not retriable)
     +-- HandlerError               a stream handler could not do what it was asked
     |    +-- StreamStartError      start() failed; retried with back-off (retriable)
     |    +-- StreamStopError       stop() failed or timed out (not retriable: it is logged
     |                              and the stream is forgotten)
     +-- TransportError             Kafka I/O failed or timed out, or the circuit breaker
                                    refused the call (``circuit_open``) (retriable)

Retry loops ask ``exc.retriable`` rather than matching a list of types.
"""

from __future__ import annotations


class WorkerError(Exception):
    """Root of the worker agent's errors."""

    retriable = False


class ConfigError(WorkerError):
    """Settings that cannot work, or a handler that cannot be loaded."""

    retriable = False


class HandlerError(WorkerError):
    """A stream handler failed."""

    retriable = False

    def __init__(self, message: str, *, stream_id: str | None = None):
        super().__init__(message)
        self.stream_id = stream_id


class StreamStartError(HandlerError):
    """``start`` failed; the agent retries with exponential back-off and reports the error."""

    retriable = True


class StreamStopError(HandlerError):
    """``stop`` failed or overran its timeout."""

    retriable = False


class TransportError(WorkerError):
    """Kafka could not be reached, or a call timed out; ``circuit_open``: the breaker
    refused the call (caused by :class:`resilience.breaker.CircuitOpenError`)."""

    retriable = True

    def __init__(self, message: str, *, circuit_open: bool = False) -> None:
        super().__init__(message)
        self.circuit_open = circuit_open
