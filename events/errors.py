"""Errors raised by the events contract.

The tree::

    EventError                      root; never retriable (bad input stays bad)
     +-- MalformedMessageError      not JSON, not an object, or a missing/invalid envelope
     +-- UnknownTypeError           the envelope names a type this build does not know
     +-- UnsupportedVersionError    a schemaversion newer than this build (or below 1)
     +-- SchemaValidationError      the body does not match the type's schema
     +-- WrongFamilyError           a valid message on the wrong topic (a command on the
                                    events topic, say)

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
