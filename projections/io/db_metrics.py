"""Prometheus metrics of a :class:`~projections.io.postgres.ResilientDatabaseManager`: its
pool, its retries, deadlocks and lock timeouts, and its circuit breaker (docs/metrics.md,
"Database").

Read at scrape time from what the manager counts anyway (``retries``, ``deadlocks``, the
breaker's state, the pool's sizes), so the database path pays nothing for them. Any process
with a manager registers them with :func:`watch_database` (the read model does; the API can).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from projections.io.postgres import ResilientDatabaseManager
from resilience.breaker import BreakerState
from telemetry.metrics import Derived, Spec, Value, state_set

BREAKER_STATES = tuple(s.value for s in BreakerState)

SPECS = (
    Spec("streamplane_db_pool_open_connections", "gauge", "Connections the pool holds open."),
    Spec(
        "streamplane_db_pool_in_use_connections",
        "gauge",
        "Connections of the pool in a transaction now.",
    ),
    Spec("streamplane_db_pool_max_connections", "gauge", "The most connections the pool opens."),
    Spec(
        "streamplane_db_retries",
        "counter",
        "Transaction attempts that failed and were tried again (deadlocks included).",
    ),
    Spec(
        "streamplane_db_deadlocks",
        "counter",
        "Transactions that lost a deadlock or serialization race (re-run).",
    ),
    Spec(
        "streamplane_db_lock_timeouts",
        "counter",
        "Transaction attempts that waited lock_timeout for a lock another session held (re-run).",
    ),
    Spec(
        "streamplane_db_breaker_state",
        "gauge",
        "Circuit breaker around PostgreSQL: 1 for its current state.",
        ("state",),
    ),
)


def db_samples(db: ResilientDatabaseManager) -> dict[str, Value]:
    """The samples of :data:`SPECS` for ``db`` now (reads only)."""
    pool = db.pool_stats()
    return {
        "streamplane_db_pool_open_connections": pool.open,
        "streamplane_db_pool_in_use_connections": pool.in_use,
        "streamplane_db_pool_max_connections": pool.max,
        "streamplane_db_retries": db.retries,
        "streamplane_db_deadlocks": db.deadlocks,
        "streamplane_db_lock_timeouts": db.lock_timeouts,
        "streamplane_db_breaker_state": state_set(db.breaker.state.value, BREAKER_STATES),
    }


def watch_database(db: ResilientDatabaseManager, registry: CollectorRegistry) -> Derived:
    """Export ``db``'s metrics in ``registry`` (read at each scrape)."""
    return Derived(SPECS, lambda: db_samples(db), registry)
