"""projections.projector.metrics.measure_lag: the control log's lag comes from the holder's own
reader when it runs (Faust's consumer has that partition paused, so its figures stand still),
every other partition's from Faust's consumer."""

from __future__ import annotations

from faust.types import TP
from prometheus_client import CollectorRegistry

from events.topics import Topics
from projections.projector.metrics import ProjectorMetrics, measure_lag

TOPICS = Topics("t")


class PausedFaustConsumer:
    """What Faust's consumer answers: the control log frozen where it was paused."""

    def __init__(self, figures: dict[TP, tuple[int, int]]) -> None:
        self.figures = figures

    def assignment(self) -> set[TP]:
        return set(self.figures)

    def highwater(self, tp: TP) -> int:
        return self.figures[tp][0]

    async def position(self, tp: TP) -> int:
        return self.figures[tp][1]


def _metrics() -> tuple[ProjectorMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return ProjectorMetrics(lambda: {}, registry), registry


async def test_the_control_logs_lag_is_the_readers_while_it_runs() -> None:
    consumer = PausedFaustConsumer(
        {TP(TOPICS.events, 0): (10, 10), TP(TOPICS.heartbeats, 2): (50, 40)}
    )
    metrics, registry = _metrics()
    await measure_lag(consumer, TOPICS, 500, metrics, control=(900, 600))
    assert registry.get_sample_value("streamplane_projector_lag_offsets") == 399
    lag = "streamplane_consumer_lag_offsets"
    assert registry.get_sample_value(lag, {"topic": "events"}) == 300
    assert registry.get_sample_value(lag, {"topic": "heartbeats"}) == 10


async def test_without_a_reader_faust_consumers_figures_count() -> None:
    consumer = PausedFaustConsumer({TP(TOPICS.events, 0): (30, 20)})
    metrics, registry = _metrics()
    await measure_lag(consumer, TOPICS, 25, metrics)
    assert registry.get_sample_value("streamplane_projector_lag_offsets") == 4
    assert registry.get_sample_value("streamplane_consumer_lag_offsets", {"topic": "events"}) == 10
