"""Errors raised by the projections package (replay, dead letters, Kafka, PostgreSQL).

The tree::

    ProjectionError                 root; ``retriable`` says whether trying again may help
     +-- KafkaIOError               a Kafka operation failed (wraps the aiokafka error)
     |    +-- KafkaUnavailableError the broker did not answer in time or the connection
     |    |                         dropped (retriable)
     |    +-- TopicSetupError       a topic could not be created, or exists with other
     |    |    |                    settings than events.topics asks for (not retriable)
     |    |    +-- TopicContractError  a topic exists with partitions, cleanup, retention,
     |    |                         replication or min ISR other than the contract's
     |    +-- UnknownTopicError     the topic to read does not exist (not retriable)
     +-- ReplayError                a replay cannot go on
     |    +-- OffsetOutOfRangeError the requested start offset is no longer (or not yet)
     |                              in the log (not retriable)
     +-- DeadLetterError            a dead letter could not be written; the replay stops
     |                              rather than drop a bad record silently (retriable)
     +-- InvalidSnapshotError       a snapshot that must not be used (corrupt, digest
     |    |                         mismatch, not rebuildable): replay the log instead
     |    +-- UnsupportedSnapshotFormatError  a snapshot format this build does not read
     +-- DatabaseError              root of PostgreSQL failures (projections.io.postgres)
          +-- DatabaseUnavailableError  unreachable after the retries, or the circuit
          |                             breaker is open (``circuit_open``) (retriable)
          +-- DatabaseTimeoutError      statement or operation timed out every time (retriable)
          +-- TransactionConflictError  deadlock / serialization failure / lock_timeout
          |                             every time (retriable)
          +-- TrackingConflictError     another writer moved the projection's tracking row
          |                             (retriable: resume from the row)
          +-- DatabaseQueryError        SQL error, constraint, bad data (not retriable)

Bad *records* are not errors here: an ``events.EventError`` while decoding becomes a dead
letter and a count in the result, and the replay goes on. aiokafka errors are mapped to
this tree by :func:`projections.io.kafka.kafka_error` (``raise ... from exc``), so callers
can ask ``exc.retriable`` instead of knowing aiokafka's classes.
"""

from __future__ import annotations


class ProjectionError(Exception):
    """Root of the projections package's errors."""

    retriable = False


class KafkaIOError(ProjectionError):
    """A Kafka operation failed; ``retriable`` follows the underlying error."""

    def __init__(self, message: str, *, retriable: bool = False) -> None:
        super().__init__(message)
        self.retriable = retriable


class KafkaUnavailableError(KafkaIOError):
    """The broker did not answer within the timeout, or the connection was lost."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=True)


class TopicSetupError(KafkaIOError):
    """A topic could not be created as specified (or exists with different settings)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=False)


class TopicContractError(TopicSetupError):
    """A topic exists with settings the contract forbids; the message names each setting
    and the command that fixes it (projections.io.topics)."""


class UnknownTopicError(KafkaIOError):
    """The topic to read does not exist (a typo, or a prefix nobody set up)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retriable=False)


class ReplayError(ProjectionError):
    """A replay cannot proceed."""


class OffsetOutOfRangeError(ReplayError):
    """The start offset lies outside ``[log start, end]`` of the partition."""


class DeadLetterError(ProjectionError):
    """Writing to the dead-letter topic failed; the caller must not skip the record."""

    retriable = True


class InvalidSnapshotError(ProjectionError):
    """A snapshot that must not be used: corrupt, digest mismatch, or not rebuildable.

    Not retriable: the same bytes stay bad. The caller replays the whole log instead.
    """

    retriable = False


class UnsupportedSnapshotFormatError(InvalidSnapshotError):
    """The snapshot's ``format`` is not one this build reads."""


class DatabaseError(ProjectionError):
    """Root of PostgreSQL failures."""


class DatabaseUnavailableError(DatabaseError):
    """PostgreSQL unreachable after the retries, or not tried: ``circuit_open``."""

    retriable = True

    def __init__(self, message: str, *, circuit_open: bool = False) -> None:
        super().__init__(message)
        self.circuit_open = circuit_open


class DatabaseTimeoutError(DatabaseError):
    retriable = True


class TransactionConflictError(DatabaseError):
    retriable = True


class TrackingConflictError(DatabaseError):
    retriable = True


class DatabaseQueryError(DatabaseError):
    retriable = False
