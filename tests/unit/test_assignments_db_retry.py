"""projections.io.postgres: how failures are classified, and the pure pieces of the retry policy
(the deadlock pause, the error raised on giving up). No database, no event loop."""

from __future__ import annotations

import logging
import sys

import asyncpg
import pytest

from projections.io.postgres import (
    DatabaseSettings,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    ResilientDatabaseManager,
    RetryKind,
    TransactionConflictError,
    classify,
    describe_dsn,
)

DSN = "postgresql://user:secret@db.example:5432/app?sslmode=disable"


def _pg(cls: type[asyncpg.PostgresError]) -> asyncpg.PostgresError:
    return cls.new({"C": cls.sqlstate, "M": "boom"})


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (_pg(asyncpg.exceptions.DeadlockDetectedError), RetryKind.CONFLICT),
        (_pg(asyncpg.exceptions.SerializationError), RetryKind.CONFLICT),
        (_pg(asyncpg.exceptions.AdminShutdownError), RetryKind.CONNECTION),
        (_pg(asyncpg.exceptions.CannotConnectNowError), RetryKind.CONNECTION),
        (_pg(asyncpg.exceptions.TooManyConnectionsError), RetryKind.CONNECTION),
        (_pg(asyncpg.exceptions.ConnectionFailureError), RetryKind.CONNECTION),
        (_pg(asyncpg.exceptions.QueryCanceledError), RetryKind.TIMEOUT),
        (_pg(asyncpg.exceptions.LockNotAvailableError), RetryKind.LOCK),
        (_pg(asyncpg.exceptions.IdleInTransactionSessionTimeoutError), RetryKind.CONNECTION),
        (_pg(asyncpg.exceptions.UniqueViolationError), RetryKind.FATAL),
        (_pg(asyncpg.exceptions.UndefinedTableError), RetryKind.FATAL),
        (ConnectionRefusedError(111, "refused"), RetryKind.CONNECTION),
        (OSError("network unreachable"), RetryKind.CONNECTION),
        (TimeoutError(), RetryKind.TIMEOUT),
        (asyncpg.exceptions.ConnectionDoesNotExistError("gone"), RetryKind.CONNECTION),
        (asyncpg.InterfaceError("connection is closed"), RetryKind.CONNECTION),
        (asyncpg.InterfaceError("cannot perform operation: another operation"), RetryKind.FATAL),
        (ValueError("bad data"), RetryKind.FATAL),
    ],
)
def test_classify(exc: BaseException, kind: RetryKind) -> None:
    assert classify(exc) is kind


def _raised_while_handling(exc: BaseException, context: BaseException) -> BaseException:
    try:
        try:
            raise context
        except BaseException:
            raise exc  # noqa: B904 (its __context__, the exception handled, is the point)
    except BaseException as raised:
        return raised


@pytest.mark.parametrize(
    ("exc", "context", "kind"),
    [
        # the server went away mid-statement; asyncpg's ROLLBACK met the protocol still busy
        (
            asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
            _pg(asyncpg.exceptions.AdminShutdownError),
            RetryKind.CONNECTION,
        ),
        (
            asyncpg.exceptions.InternalClientError("cannot switch to state 15"),
            asyncpg.exceptions.ConnectionDoesNotExistError("closed in the middle of operation"),
            RetryKind.CONNECTION,
        ),
        # the server's FATAL between two statements broke the protocol, then the ROLLBACK
        # met the statement that failed on it
        (
            asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
            asyncpg.exceptions.InternalClientError(
                "cannot switch to state 21; another operation (2) is in progress"
            ),
            RetryKind.CONNECTION,
        ),
        # the same client error after something that is not a lost connection stays fatal
        (
            asyncpg.InterfaceError("cannot perform operation: another operation is in progress"),
            _pg(asyncpg.exceptions.UniqueViolationError),
            RetryKind.FATAL,
        ),
        # only a client error is judged by its context: a bug stays a bug
        (ValueError("bad data"), ConnectionResetError(104, "reset"), RetryKind.FATAL),
    ],
)
def test_a_client_error_while_handling_a_lost_connection_is_that_loss(
    exc: BaseException, context: BaseException, kind: RetryKind
) -> None:
    raised = _raised_while_handling(exc, context)
    assert raised.__context__ is context
    assert classify(raised) is kind


def test_a_protocol_broken_by_the_server_is_a_lost_connection() -> None:
    broken = asyncpg.exceptions.InternalClientError
    assert classify(broken("cannot switch to state 21; another operation (2) is in progress")) is (
        RetryKind.CONNECTION
    )
    unexpected = broken("cannot process message 'E': protocol is in an unexpected state 0")
    assert classify(unexpected) is RetryKind.CONNECTION
    assert classify(broken("no binary format encoder for type x")) is RetryKind.FATAL


def test_deadlock_pause_is_random_and_bounded() -> None:
    settings = DatabaseSettings(conflict_max_delay=0.2)
    values = iter([0.0, 0.5, 0.999])
    db = ResilientDatabaseManager(DSN, settings=settings, rand=lambda: next(values))
    exc = _pg(asyncpg.exceptions.DeadlockDetectedError)
    pauses = [db.handle_deadlock(exc, attempt) for attempt in range(3)]
    assert pauses == pytest.approx([0.0, 0.1, 0.1998])
    assert db.deadlocks == 3


def test_giving_up_names_the_server_without_the_password() -> None:
    db = ResilientDatabaseManager(DSN, settings=DatabaseSettings(attempts=3))
    down = db._give_up("apply batch", ConnectionRefusedError(111, "refused"))
    assert isinstance(down, DatabaseUnavailableError) and down.retriable
    assert "db.example:5432/app" in str(down) and "secret" not in str(down)
    assert "3 tries" in str(down)
    conflict = db._give_up("x", _pg(asyncpg.exceptions.DeadlockDetectedError))
    assert isinstance(conflict, TransactionConflictError) and conflict.retriable
    timeout = db._give_up("x", TimeoutError())
    assert isinstance(timeout, DatabaseTimeoutError)


def test_describe_dsn_drops_credentials_and_options() -> None:
    assert describe_dsn(DSN) == "db.example:5432/app"
    assert describe_dsn("postgresql://localhost/x") == "localhost/x"


def test_every_connection_bounds_its_lock_waits_and_idle_transactions() -> None:
    settings = DatabaseSettings(
        statement_timeout=30, lock_timeout=2.5, idle_in_transaction_session_timeout=45
    )
    db = ResilientDatabaseManager(DSN, schema="rm", settings=settings, application_name="x")
    assert db.server_settings() == {
        "search_path": "rm",
        "statement_timeout": "30000",
        "lock_timeout": "2500",
        "idle_in_transaction_session_timeout": "45000",
        "application_name": "x",
    }
    defaults = ResilientDatabaseManager(DSN).server_settings()
    assert defaults["lock_timeout"] == "10000"
    assert defaults["idle_in_transaction_session_timeout"] == "60000"


def test_the_pools_refill_failures_are_logged_on_one_line() -> None:
    ResilientDatabaseManager(DSN)
    pool_log = logging.getLogger("asyncpg.pool")
    try:
        raise ConnectionRefusedError(111, "Connect call failed")
    except ConnectionRefusedError:
        record = pool_log.makeRecord(
            pool_log.name, logging.WARNING, "pool.py", 1, "refill %s", ("failed",), sys.exc_info()
        )
    assert pool_log.filter(record)
    assert record.exc_info is None
    assert (
        record.getMessage()
        == "refill failed: ConnectionRefusedError: [Errno 111] Connect call failed"
    )
