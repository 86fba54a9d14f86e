"""PostgreSQL with retries: the seed's ``ResilientDatabaseManager`` over an asyncpg pool.

``execute_with_retry(operation)`` runs ``operation(connection)`` in one transaction and, when
it fails, asks :func:`~projections.io.pg_failures.classify` what to do:

- **conflict** (deadlock ``40P01``, serialization failure ``40001``): the transaction was rolled
  back whole, so run it again at once after a short randomised pause (:meth:`handle_deadlock`)
  so the two parties do not collide again in lock step;
- **connection** (refused, dropped, server shutting down, too many clients, class ``08``, a
  session the server ended for idling in a transaction, a client error raised while the
  server was ending the session; a statement under way when the connection is lost fails at
  once: :mod:`projections.io.pg_failures`):
  exponential back-off with full jitter, counted by a circuit breaker that, once open, fails
  calls fast (:class:`DatabaseUnavailableError`, ``circuit_open``) until ``breaker_reset``;
- **timeout** (``statement_timeout`` hit, ``57014``, or the client-side bound): back-off too;
- **lock** (``lock_timeout`` hit, ``55P03``, :class:`asyncpg.exceptions.LockNotAvailableError`:
  another session holds a lock we need): back-off, not counted by the breaker (the server
  answered), counted in ``lock_timeouts``;
- anything else is a bug or bad data: raised at once as :class:`DatabaseQueryError`.

Every statement has a server-side ``statement_timeout``, every lock wait a ``lock_timeout``,
every session an ``idle_in_transaction_session_timeout`` (a client that stalls inside a
transaction loses it instead of holding its locks) and the whole operation an
``asyncio.timeout``. :meth:`monitor_long_transactions` lists transactions open longer than a
threshold (``pg_stat_activity``).

Its errors are the ``DatabaseError`` branch of :mod:`projections.errors`; an open circuit is a
:class:`DatabaseUnavailableError` with ``circuit_open`` set (caused by the one
:class:`resilience.breaker.CircuitOpenError`).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Literal, NamedTuple, TypeVar

import asyncpg
from pydantic import BaseModel, ConfigDict, Field

from projections.errors import (
    DatabaseError,
    DatabaseQueryError,
    DatabaseTimeoutError,
    DatabaseUnavailableError,
    TrackingConflictError,
    TransactionConflictError,
)
from projections.io.pg_codec import init_connection
from projections.io.pg_failures import RETRIED_TYPES, RetryKind, classify, unless_lost
from resilience.backoff import Backoff
from resilience.breaker import BreakerPolicy, CircuitBreaker, CircuitOpenError

log = logging.getLogger(__name__)
T = TypeVar("T")
Isolation = Literal["read_committed", "repeatable_read", "serializable"]


class DatabaseSettings(BaseModel):
    """Retry, timeout and pool tuning (part of each process's settings)."""

    model_config = ConfigDict(frozen=True)

    #: server-side bound of every statement
    statement_timeout: float = Field(default=30.0, gt=0)
    #: server-side bound of one wait for a lock (a retried LockNotAvailableError)
    lock_timeout: float = Field(default=10.0, gt=0)
    #: the server ends a session idle inside a transaction this long (its locks go with it)
    idle_in_transaction_session_timeout: float = Field(default=60.0, gt=0)
    #: client-side bound of one whole operation (one transaction attempt)
    operation_timeout: float = Field(default=60.0, gt=0)
    connect_timeout: float = Field(default=10.0, gt=0)
    attempts: int = Field(default=5, ge=1)
    backoff_base: float = Field(default=0.2, gt=0)
    backoff_cap: float = Field(default=10.0, gt=0)
    #: longest randomised pause before re-running a transaction that lost a deadlock
    conflict_max_delay: float = Field(default=0.1, ge=0)
    breaker_threshold: int = Field(default=5, ge=1)
    breaker_reset: float = Field(default=15.0, gt=0)
    #: transactions open longer than this are reported by monitor_long_transactions
    long_transaction_after: float = Field(default=60.0, gt=0)
    pool_min: int = Field(default=1, ge=0)
    pool_max: int = Field(default=4, ge=1)


class PoolStats(NamedTuple):
    """The pool's connections: open, in use by a transaction, and the most it may open."""

    open: int
    in_use: int
    max: int


class LongTransaction(NamedTuple):
    """A transaction open longer than the threshold (one ``pg_stat_activity`` row)."""

    pid: int
    seconds: float
    state: str | None
    application_name: str | None
    query: str | None
    xact_start: datetime


LONG_TRANSACTIONS_SQL = """
SELECT pid, EXTRACT(EPOCH FROM now() - xact_start)::float8 AS seconds, state,
       application_name, left(query, 500) AS query, xact_start
FROM pg_stat_activity
WHERE xact_start IS NOT NULL AND pid <> pg_backend_pid()
  AND now() - xact_start > make_interval(secs => $1)
ORDER BY xact_start
"""


class _OneLine(logging.Filter):
    """asyncpg's pool logs a whole traceback each time it fails to refill itself while the
    server is away (every few seconds): one line says as much, beside the manager's own."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None:
            record.msg, record.args = f"{record.getMessage()}: {type(exc).__name__}: {exc}", None
            record.exc_info = record.exc_text = None
        return True


_ONE_LINE = _OneLine()


def _ms(seconds: float) -> str:
    """A duration setting for the server, in whole milliseconds (at least 1: 0 disables)."""
    return str(max(1, round(seconds * 1000)))


def describe_dsn(dsn: str) -> str:
    """``host:port/db`` of a libpq URL, without user or password (for error messages)."""
    tail = dsn.split("://", 1)[-1].rsplit("@", 1)[-1]
    return tail.split("?", 1)[0]


class ResilientDatabaseManager:
    """An asyncpg pool (``search_path`` = ``schema``) with :meth:`execute_with_retry`."""

    def __init__(
        self,
        dsn: str,
        *,
        schema: str = "public",
        settings: DatabaseSettings | None = None,
        application_name: str = "streamplane",
        rand: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dsn = dsn
        self.schema = schema
        self.settings = s = settings or DatabaseSettings()
        self.application_name = application_name
        self._rand = rand
        self._backoff = Backoff(s.backoff_base, s.backoff_cap)
        self.breaker = CircuitBreaker(
            BreakerPolicy(s.breaker_threshold, s.breaker_reset), clock, name="postgres"
        )
        self._pool: asyncpg.Pool | None = None
        self.retries = 0
        self.deadlocks = 0
        self.lock_timeouts = 0
        logging.getLogger("asyncpg.pool").addFilter(_ONE_LINE)  # addFilter adds it once

    async def __aenter__(self) -> ResilientDatabaseManager:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the pool (waits for connections in use, bounded)."""
        pool, self._pool = self._pool, None
        if pool is not None:
            try:
                async with asyncio.timeout(self.settings.operation_timeout):
                    await pool.close()
            except TimeoutError:
                pool.terminate()

    def pool_stats(self) -> PoolStats:
        """How many connections are open and in use (all 0 before the first call)."""
        pool = self._pool
        if pool is None:
            return PoolStats(0, 0, self.settings.pool_max)
        size = pool.get_size()
        return PoolStats(size, size - pool.get_idle_size(), self.settings.pool_max)

    async def _ensure_pool(self) -> asyncpg.Pool:
        if self._pool is None:
            s = self.settings
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=s.pool_min,
                max_size=s.pool_max,
                timeout=s.connect_timeout,
                init=init_connection,
                server_settings=self.server_settings(),
            )
        return self._pool

    def server_settings(self) -> dict[str, str]:
        """The session settings of every connection of the pool (timeouts in ms)."""
        s = self.settings
        return {
            "search_path": self.schema,
            "statement_timeout": _ms(s.statement_timeout),
            "lock_timeout": _ms(s.lock_timeout),
            "idle_in_transaction_session_timeout": _ms(s.idle_in_transaction_session_timeout),
            "application_name": self.application_name,
        }

    async def execute_with_retry(
        self,
        operation: Callable[[asyncpg.Connection], Awaitable[T]],
        *,
        what: str = "query",
        isolation: Isolation | None = None,
        readonly: bool = False,
    ) -> T:
        """Run ``operation(conn)`` in a transaction, retrying as the module docstring says.
        ``isolation="repeatable_read", readonly=True`` gives readers one snapshot.
        Raises a :class:`DatabaseError` (``retriable`` says whether trying later may help)."""
        s = self.settings
        last: BaseException | None = None
        for attempt in range(s.attempts):
            try:
                self.breaker.check(what)
            except CircuitOpenError as exc:
                raise DatabaseUnavailableError(
                    f"{what}: PostgreSQL at {describe_dsn(self.dsn)} failed repeatedly; "
                    f"not trying again for up to {s.breaker_reset:.0f}s",
                    circuit_open=True,
                ) from (last or exc)
            try:
                result = await self._attempt(operation, isolation, readonly)
            except RETRIED_TYPES as exc:
                last = exc
                kind = classify(exc)
                if kind is RetryKind.LOCK:
                    self.lock_timeouts += 1
                if kind is RetryKind.FATAL:
                    self.breaker.success()  # the server answered: the path works
                    raise DatabaseQueryError(f"{what}: {type(exc).__name__}: {exc}") from exc
                if attempt == s.attempts - 1:
                    self._count_failure(kind)
                    break
                await asyncio.sleep(self._pause(kind, exc, attempt, what))
                continue
            self.breaker.success()
            return result
        raise self._give_up(what, last)

    async def _attempt(
        self,
        operation: Callable[[asyncpg.Connection], Awaitable[T]],
        isolation: Isolation | None,
        readonly: bool,
    ) -> T:
        async with asyncio.timeout(self.settings.operation_timeout):
            try:
                pool = await self._ensure_pool()
            except BaseException:
                self._pool = None
                raise
            async with (
                pool.acquire() as conn,
                conn.transaction(isolation=isolation, readonly=readonly),
            ):
                return await unless_lost(conn, operation(conn))

    def _count_failure(self, kind: RetryKind) -> None:
        # a deadlock or a lock held by another session says nothing about the server's health
        if kind not in (RetryKind.CONFLICT, RetryKind.LOCK):
            self.breaker.failure()

    def _pause(self, kind: RetryKind, exc: BaseException, attempt: int, what: str) -> float:
        self.retries += 1
        self._count_failure(kind)
        if kind is RetryKind.CONFLICT:
            return self.handle_deadlock(exc, attempt, what=what)
        pause = self._backoff.delay(attempt, self._rand)
        log.warning("%s: %s (%s); retry %d in %.2fs", what, kind, exc, attempt + 1, pause)
        return pause

    def handle_deadlock(self, exc: BaseException, attempt: int, *, what: str = "query") -> float:
        """The pause before re-running a transaction that lost a deadlock or serialization
        race: random in ``[0, conflict_max_delay]`` so the parties do not meet again."""
        self.deadlocks += 1
        pause = self._rand() * self.settings.conflict_max_delay
        log.info("%s: %s, attempt %d; re-running in %.3fs", what, exc, attempt + 1, pause)
        return pause

    def _give_up(self, what: str, last: BaseException | None) -> DatabaseError:
        where = describe_dsn(self.dsn)
        kind = classify(last) if last is not None else RetryKind.FATAL
        detail = f"{type(last).__name__}: {last}" if last is not None else "no attempt made"
        tries = self.settings.attempts
        if kind in (RetryKind.CONFLICT, RetryKind.LOCK):
            return TransactionConflictError(
                f"{what}: still conflicting after {tries} tries: {detail}"
            )
        if kind is RetryKind.TIMEOUT:
            return DatabaseTimeoutError(f"{what}: timed out {tries} times at {where}: {detail}")
        return DatabaseUnavailableError(
            f"{what}: PostgreSQL at {where} is unreachable after {tries} tries: {detail}"
        )

    async def monitor_long_transactions(
        self, threshold: float | None = None
    ) -> list[LongTransaction]:
        """Transactions (other than this connection's) open longer than ``threshold``
        seconds (default ``long_transaction_after``), oldest first; each is logged."""
        secs = self.settings.long_transaction_after if threshold is None else threshold

        async def query(conn: asyncpg.Connection) -> list[Any]:
            return list(await conn.fetch(LONG_TRANSACTIONS_SQL, float(secs)))

        rows = await self.execute_with_retry(query, what="monitor long transactions")
        found = [LongTransaction(*row.values()) for row in rows]
        for tx in found:
            log.warning("long transaction: pid %d open %.0fs (%s)", tx.pid, tx.seconds, tx.state)
        return found


__all__ = [
    "DatabaseError",
    "DatabaseQueryError",
    "DatabaseSettings",
    "DatabaseTimeoutError",
    "DatabaseUnavailableError",
    "LongTransaction",
    "PoolStats",
    "ResilientDatabaseManager",
    "RetryKind",
    "TrackingConflictError",
    "TransactionConflictError",
    "classify",
]
