"""Errors raised by the events contract.

The tree::

    EventError                      root; never retriable (bad input stays bad)
     +-- MalformedMessageError      not JSON, not an object, or a missing/invalid envelope
     +-- UnknownTypeError           the envelope names a type this build does not know
     +-- UnsupportedVersionError    a schemaversion newer than this build (or below 1)
     +-- SchemaValidationError      the body does not match the type's schema
     +-- WrongFamilyError           a valid message on the wrong topic (a command on the
     |                              events topic, say)
     +-- UnauthenticatedError       a valid heartbeat that does not count: unsigned, badly
                                    signed, or for a server id with no (or a revoked) key

Every error says *what* and *where*: ``type``, ``schemaversion`` and the offending field,
so a dead-letter entry can be read without the original bytes.
"""

from __future__ import annotations


class EventError(Exception):
    """Root of the events contract's errors."""

    retriable = False

    def __init__(self, message: str, *, type_: str | None = None, field: str | None = None):
        super().__init__(message)
        self.type = type_
        self.field = field


class MalformedMessageError(EventError):
    """The bytes are not a JSON object with a valid CloudEvents envelope."""


class UnknownTypeError(EventError):
    """The envelope's ``type`` is not one this build knows."""


class UnsupportedVersionError(EventError):
    """The ``schemaversion`` is newer than this build understands, or not a positive int."""


class SchemaValidationError(EventError):
    """The message body breaks the type's schema (names the field and the value)."""


class WrongFamilyError(EventError):
    """A well-formed message of a family that does not belong where it was read."""


class UnauthenticatedError(EventError):
    """A well-formed heartbeat whose envelope does not prove who sent it (see
    :mod:`events.session`); ``reason`` is one word: ``unsigned``, ``malformed``,
    ``unenrolled``, ``revoked``, ``session_mismatch``, ``wrong_key``, ``bad_signature``,
    ``bad_mac``, ``stale``, ``replayed``."""

    def __init__(self, message: str, *, reason: str, field: str, server_id: str):
        super().__init__(message, type_="Heartbeat", field=field)
        self.reason = reason
        self.server_id = server_id
