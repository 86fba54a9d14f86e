"""The read side's ``/metrics``, scraped from the real processes on real Kafka (and real
PostgreSQL for the read model): once caught up, the applied seq is the log's, the lags are
0, the events are counted, a malformed record is counted as a dead letter by origin; the
database pool and breaker are exported."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest
from support.scrape import Scrape, scrape

from events import encode
from events.base import ControlEvent
from events.topics import ALL_TOPICS, Topics
from projections.fold import fold
from projections.io.kafka import make_producer, publish, started
from projections.io.read_store import ReadModelSettings
from projections.io.topics import ensure_topics
from projections.read_model import ReadModelProjector
from projections.testing.synthetic import generate_history
from telemetry.metrics import free_address

pytestmark = pytest.mark.integration

WAIT = 45.0


async def _append(bootstrap: str, prefix: str, events: list[ControlEvent], *, junk: bool) -> None:
    """Append ``events`` in one transaction, as the orchestrator writes (then ``b"not json"``
    in another when ``junk``)."""
    producer = make_producer(bootstrap, transactional_id=f"{prefix}-writer")
    async with started(producer):
        async with producer.transaction():
            await publish(producer, Topics(prefix).events, [encode(e) for e in events])
        if junk:
            async with producer.transaction():
                await producer.send_and_wait(Topics(prefix).events, b"not json", partition=0)


async def _until(port: int, check: object, what: str) -> Scrape:
    last = "never scraped"
    async with asyncio.timeout(WAIT):
        while True:
            try:
                s = await scrape(port)
                last = check(s)  # type: ignore[operator]
                if last == "":
                    return s
            except OSError as exc:  # not listening yet
                last = str(exc)
            await asyncio.sleep(0.5)
    raise AssertionError(f"{what}: {last}")  # pragma: no cover (the timeout raises first)


async def test_read_model_metrics(
    kafka_bootstrap: str, database_url: str, pg_schema: str, topic_prefix: str
) -> None:
    history = generate_history(600, seed=5, instances=4, streams=30)
    await ensure_topics(kafka_bootstrap, Topics(topic_prefix), ALL_TOPICS)
    await _append(kafka_bootstrap, topic_prefix, history, junk=True)
    address = free_address()
    settings = ReadModelSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_url,
        database_schema=pg_schema,
        metrics_address=address,
    )
    port = int(address.rsplit(":", 1)[1])
    async with ReadModelProjector(settings=settings) as p:
        await p.catch_up()
        s = await scrape(port)
    state = fold(history)
    assert s.num("streamplane_read_model_applied_seq") == state.seq == p.state.seq
    assert s.num("streamplane_read_model_lag_offsets") == 0
    assert s.num("streamplane_consumer_lag_offsets", topic="events") == 0
    assert s.num("streamplane_read_model_events_applied_total") == len(history)
    assert s.num("streamplane_read_model_batches_total") >= 1
    assert s.num("streamplane_dead_letters_total", origin="events") == 1
    assert s.num("streamplane_db_pool_open_connections") >= 1
    assert s.num("streamplane_db_pool_max_connections") == settings.database.pool_max
    assert s.num("streamplane_db_breaker_state", state="closed") == 1
    assert s.num("process_resident_memory_bytes") > 0
    with pytest.raises(OSError):  # closed with the projector
        await scrape(port)


async def test_projector_metrics(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> None:
    history = generate_history(600, seed=6, instances=4, streams=30)
    head, tail = history[:400], history[400:]
    await ensure_topics(kafka_bootstrap, Topics(topic_prefix), ALL_TOPICS)
    await _append(kafka_bootstrap, topic_prefix, head, junk=False)
    address = free_address()
    port = int(address.rsplit(":", 1)[1])
    env = {
        **os.environ,
        "STREAMPLANE_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "STREAMPLANE_TOPIC_PREFIX": topic_prefix,
        "STREAMPLANE_PROJECTOR_DATA_DIR": str(tmp_path / "faust"),
        "STREAMPLANE_METRICS_ADDRESS": address,
        "STREAMPLANE_PROJECTOR_METRICS_INTERVAL": "0.5",
    }
    log = tmp_path / "projector.log"
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "projections.projector", env=env, stdout=out, stderr=out
        )
    try:
        # the replay at start folds the head; then the tail and a malformed record live
        await _until(
            port,
            lambda s: "" if s.value("streamplane_projector_applied_seq") == len(head) else "head",
            "the head replayed",
        )
        await _until(  # it holds the log now: what comes next is folded live
            port,
            lambda s: "" if s.value("streamplane_projector_active") == 1 else "not active yet",
            "the projector took the log over",
        )
        await _append(kafka_bootstrap, topic_prefix, tail, junk=True)

        def caught_up(s: Scrape) -> str:
            got = (
                s.value("streamplane_projector_applied_seq"),
                s.value("streamplane_projector_lag_offsets"),
                s.value("streamplane_consumer_lag_offsets", topic="events"),
                s.value("streamplane_dead_letters_total", origin="events"),
            )
            return "" if got == (len(history), 0, 0, 1) else f"(seq, lag, consumer lag, dlq) {got}"

        s = await _until(port, caught_up, "the tail folded live")
        assert s.num("streamplane_projector_events_folded_total") == len(tail)
        assert s.num("streamplane_event_loop_lag_seconds") >= 0
    except (TimeoutError, AssertionError):
        print(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            async with asyncio.timeout(20):
                await proc.wait()
        except TimeoutError:
            proc.kill()
            await proc.wait()
