"""What a PostgreSQL failure is, for the retries of :mod:`projections.io.postgres`.

:func:`classify` (pure) sorts an exception into a :class:`RetryKind`: by SQLSTATE first, then
by type; a client error raised while the server was ending the session counts as that lost
connection. :func:`unless_lost` makes a statement under way fail at once when its connection
is lost (asyncpg 0.32 can otherwise wait until the operation timeout).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from enum import StrEnum
from typing import TypeVar

import asyncpg

T = TypeVar("T")


class RetryKind(StrEnum):
    """How :meth:`~projections.io.postgres.ResilientDatabaseManager.execute_with_retry`
    treats a failure."""

    CONFLICT = "conflict"
    CONNECTION = "connection"
    TIMEOUT = "timeout"
    LOCK = "lock"
    FATAL = "fatal"


#: SQLSTATEs of a transaction that lost a lock or serialization race (retry at once)
CONFLICT_STATES = frozenset({"40P01", "40001"})
#: SQLSTATEs of a server that is going away or refusing connections, or that ended the
#: session (idle_in_transaction_session_timeout 25P03, idle_session_timeout 57P05)
CONNECTION_STATES = frozenset({"57P01", "57P02", "57P03", "57P05", "53300", "53000", "25P03"})
#: query_canceled: statement_timeout (or a cancel request)
TIMEOUT_STATES = frozenset({"57014"})
#: lock_not_available: lock_timeout hit (or NOWAIT)
LOCK_STATES = frozenset({"55P03"})


#: how far :func:`classify` follows a client error's context back to what caused it
CONTEXT_DEPTH = 4


def classify(exc: BaseException) -> RetryKind:
    """Pure: what kind of failure ``exc`` is (by SQLSTATE first, then by type).

    A client-side error raised while handling a lost connection is that connection's loss:
    when the server goes away mid-statement, asyncpg's ``ROLLBACK`` on the way out of the
    transaction can meet the protocol still busy (``InterfaceError: another operation is in
    progress``, ``InternalClientError: cannot switch to state ...``) and hides the real cause
    behind it, as its ``__context__``."""
    kind = _classify_one(exc)
    if kind is RetryKind.FATAL and isinstance(exc, asyncpg.InterfaceError | _CLIENT_ERROR):
        cause, depth = exc.__cause__ or exc.__context__, 0
        while cause is not None and depth < CONTEXT_DEPTH:
            if _classify_one(cause) is RetryKind.CONNECTION:
                return RetryKind.CONNECTION
            cause, depth = cause.__cause__ or cause.__context__, depth + 1
    return kind


#: asyncpg's error for a protocol in a state it did not expect (not an InterfaceError)
_CLIENT_ERROR = asyncpg.exceptions.InternalClientError
#: what asyncpg says when the server's messages broke its protocol. We never run two
#: statements on one connection at once, so it is the server ending the session: a FATAL
#: ErrorResponse that arrives between two statements (a fast shutdown, a terminated backend)
#: is "unexpected" to asyncpg, which then refuses the next statement until the socket closes
BROKEN_PROTOCOL = ("cannot switch to state", "cannot process message")
#: what an attempt may raise that :func:`classify` judges (anything else is a bug: raised)
RETRIED_TYPES = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    _CLIENT_ERROR,
    OSError,
    TimeoutError,
)


def _classify_one(exc: BaseException) -> RetryKind:
    state = getattr(exc, "sqlstate", None)
    if isinstance(state, str):
        if state in CONFLICT_STATES:
            return RetryKind.CONFLICT
        if state in CONNECTION_STATES or state.startswith("08"):
            return RetryKind.CONNECTION
        if state in TIMEOUT_STATES:
            return RetryKind.TIMEOUT
        if state in LOCK_STATES:
            return RetryKind.LOCK
        return RetryKind.FATAL
    if isinstance(exc, TimeoutError):
        return RetryKind.TIMEOUT
    if isinstance(exc, OSError | asyncpg.exceptions.ConnectionDoesNotExistError):
        return RetryKind.CONNECTION
    if isinstance(exc, asyncpg.InterfaceError) and "connection" in str(exc).lower():
        return RetryKind.CONNECTION
    if isinstance(exc, _CLIENT_ERROR) and any(m in str(exc) for m in BROKEN_PROTOCOL):
        return RetryKind.CONNECTION
    return RetryKind.FATAL


async def unless_lost(conn: asyncpg.Connection, work: Awaitable[T]) -> T:
    """``await work`` (a statement on ``conn``), but fail at once with
    ``ConnectionDoesNotExistError`` if the connection is lost meanwhile.

    asyncpg 0.32 can wait forever there: a COPY or an ``executemany`` that has filled the
    socket's buffer waits for the transport to drain, and a connection lost at that moment
    never says so (its ``writing_allowed`` event stays clear). Without this guard only the
    operation timeout ends the wait. The guard is the connection's own termination listener,
    which asyncpg calls when the connection is lost."""
    task = asyncio.ensure_future(work)
    lost = False

    def on_lost(_: object) -> None:
        nonlocal lost
        lost = True
        task.cancel()

    conn.add_termination_listener(on_lost)
    try:
        return await task
    except asyncio.CancelledError:
        this = asyncio.current_task()
        if not lost or (this is not None and this.cancelling()):
            raise  # cancelled from outside (a timeout, a shutdown): that wins
        raise asyncpg.ConnectionDoesNotExistError(
            "connection lost in the middle of a statement"
        ) from None
    finally:
        conn.remove_termination_listener(on_lost)


__all__ = ["BROKEN_PROTOCOL", "RETRIED_TYPES", "RetryKind", "classify", "unless_lost"]
