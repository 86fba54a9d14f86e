"""Running the Faust projector process (``streamplane projector``, ``python -m
projections.projector``): create its topics, replay the control log, then run the Faust
worker around :class:`projections.projector.app.FaustProjector`."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import NamedTuple

import faust
from pydantic import ValidationError

from events.topics import ASSIGNMENTS, DLQ, EVENTS, HEARTBEATS, Topics
from kafka_auth import KafkaAccessError
from projections.errors import KafkaIOError, ProjectionError, TopicSetupError
from projections.io.replay import ReplayResult, ReplaySettings, replay
from projections.io.topics import ensure_topics, replication_factor
from projections.projector.app import FaustProjector
from projections.projector.settings import ProjectorSettings
from telemetry.metrics import MetricsAddressError, process_registry, serving

log = logging.getLogger(__name__)


class ServiceWorker(faust.Worker):
    """Faust's worker without its terminal progress spinner. At a log level of WARNING or
    above, Faust hands the spinner a handler at DEBUG and sets the root logger to DEBUG, so
    every library's debug record is built (~10% of the projector's CPU at 5,000 events/s,
    measured with py-spy) and the terminal gets escape codes. Our handlers stay as
    :func:`telemetry.logs.setup_logging` made them."""

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        self.spinner = None


class Start(NamedTuple):
    """What the process starts from: the replayed log and the changelogs' replication."""

    initial: ReplayResult
    replication: int


async def prepare(settings: ProjectorSettings) -> Start:
    """Create the topics the projector writes and replay the control log (the start state)."""
    topics = Topics(settings.topic_prefix)
    access, timeout = settings.kafka_access, settings.projector_kafka_timeout
    await ensure_topics(access, topics, (EVENTS, HEARTBEATS, ASSIGNMENTS, DLQ))
    replication = settings.projector_replication_factor or await replication_factor(
        access, kafka_timeout=timeout
    )
    result = await replay(access, topics.events, settings=ReplaySettings(kafka_timeout=timeout))
    log.info(
        "replayed %s: %d event(s), seq %d, next offset %d, %d undecodable (logged)",
        topics.events,
        result.events,
        result.state.seq,
        result.offset,
        result.rejected,
    )
    return Start(result, replication)


def run_projector(settings: ProjectorSettings, *, loglevel: str = "info") -> None:
    """Replay, then run the Faust worker until SIGTERM/SIGINT (blocking), with its
    ``/metrics`` endpoint when ``metrics_address`` is set."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    registry = process_registry()  # served from the start: a long replay is worth watching
    with serving(registry, settings.metrics_address):
        start = loop.run_until_complete(prepare(settings))
        projector = FaustProjector(
            settings, start.initial, replication=start.replication, registry=registry
        )
        worker = ServiceWorker(projector.app, loop=loop, loglevel=loglevel, quiet=True)
        worker.execute_from_commandline()


#: exit codes, as ``streamplane``'s (docs/cli.md)
FAILED, USAGE, UNAVAILABLE = 1, 2, 3


def start_failure(exc: BaseException) -> tuple[int, str] | None:
    """The exit code and ONE ``error:`` line for a start that failed in a known way (a bad
    setting, Kafka unreachable, a topic against the contract); None for anything else."""
    if isinstance(exc, ValidationError):
        fields = (".".join(str(p) for p in e["loc"]) or exc.title for e in exc.errors())
        why = "; ".join(f"{f}: {e['msg']}" for f, e in zip(fields, exc.errors(), strict=True))
        return USAGE, f"error: {why}"
    if isinstance(exc, KafkaAccessError | MetricsAddressError):  # their messages name the setting
        return USAGE, f"error: {exc}"
    if isinstance(exc, KafkaIOError) and exc.retriable and not isinstance(exc, TopicSetupError):
        return UNAVAILABLE, f"error: kafka_bootstrap: {exc}"
    if isinstance(exc, ProjectionError):
        return FAILED, f"error: {exc}"
    return None


def main() -> int:
    """``python -m projections.projector``: run with settings from the environment. A start
    that fails in a known way ends with one ``error:`` line and the CLI's exit code, its
    traceback logged at DEBUG only."""
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        run_projector(ProjectorSettings())
    except (ValidationError, ProjectionError, KafkaAccessError, MetricsAddressError) as exc:
        known = start_failure(exc)
        if known is None:  # pragma: no cover - start_failure knows every type caught here
            raise
        log.debug("the projector did not start", exc_info=exc)
        print(" ".join(known[1].split()), file=sys.stderr)
        return known[0]
    return 0


__all__ = ["ServiceWorker", "Start", "main", "prepare", "run_projector", "start_failure"]
