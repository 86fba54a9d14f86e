"""Deterministic generator of *valid* control-log histories, for tests, benchmarks and demos.

``generate_history(n, seed=s)`` always returns the same ``n`` events for the same arguments
(it uses its own ``random.Random(seed)``, never the global one, and never iterates a hash-ordered
collection). The generator keeps its own fold state (through :func:`projections.fold.apply`)
and only ever chooses events that are legal in that state, as a well-behaved orchestrator
would: folding any prefix of a generated history yields no finding.

The history starts with ``LeaderElected(epoch=1)`` and exercises every control event type:
instances come, are suspected, recover, fail or leave (their streams are reassigned or
unassigned right after, as the orchestrator does), get quarantined, drained and resized;
streams are registered, assigned within capacity, started, failed (sometimes parked),
migrated make-before-break (completed or aborted) and deregistered; rebalances, commands,
consistency checks, maintenance mode and new leader terms happen now and then.

The generator's memory is :mod:`~projections.testing.synthetic.generator`; the events are
chosen by :mod:`~projections.testing.synthetic.instances`, ``.streams`` and ``.cluster``,
and :func:`_step` picks one of them, weighted, per step.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Callable, Iterator
from datetime import datetime

from events import control as ev
from events.base import ControlEvent
from projections.testing.synthetic import cluster, instances, streams
from projections.testing.synthetic.generator import START, Generator

_WEIGHTED: tuple[tuple[Callable[[Generator], bool], float], ...] = (
    (streams.assign, 25),
    (streams.start, 25),
    (instances.sample, 8),
    (streams.migrate, 4),
    (streams.end_migration, 5),
    (streams.fail_stream, 2),
    (streams.register_stream, 2),
    (streams.deregister_stream, 2),
    (instances.register_instance, 0.3),
    (instances.remove_instance, 0.5),
    (instances.suspect, 1.5),
    (instances.recover, 3),
    (instances.quarantine, 3),
    (instances.drain, 0.3),
    (instances.drain_progress, 3),
    (instances.resize, 0.5),
    (streams.rebalance, 1),
    (cluster.command, 2),
    (cluster.consistency, 0.3),
    (cluster.maintenance, 0.2),
    (cluster.elect, 0.05),
    (instances.enroll, 0.1),
    (instances.revoke, 0.05),
)
_ACTIONS = [action for action, _ in _WEIGHTED]
_CUM_WEIGHTS = list(itertools.accumulate(weight for _, weight in _WEIGHTED))


def _step(g: Generator) -> None:
    """Emit one legal event (a failure emits its reassignments right after it)."""
    rng = g.rng
    if len(g.live) < g.target_instances and rng.random() < 0.3:
        instances.register_instance(g)
        return
    if len(g.all_streams) < g.target_streams and rng.random() < 0.3:
        streams.register_stream(g)
        return
    for _ in range(3):
        action = _ACTIONS[bisect.bisect(_CUM_WEIGHTS, rng.random() * _CUM_WEIGHTS[-1])]
        if action(g):
            return
    if not instances.sample(g):
        instances.register_instance(g)


def iter_history(
    n_events: int,
    *,
    seed: int = 0,
    instances: int = 10,
    streams: int = 100,
    start: datetime = START,
) -> Iterator[ControlEvent]:
    """Lazily yield ``n_events`` valid control events (seq 1..n, gapless), deterministically.

    ``instances`` and ``streams`` are the sizes the cluster hovers around; ``start`` is the
    time of the first event (later ones follow within 20 ms each).
    """
    gen = Generator(random.Random(seed), instances, streams, start)
    gen.emit(ev.LeaderElected, epoch=1, leader_id="orch-b")
    emitted = 0
    while True:
        for event in gen.out:
            if emitted == n_events:
                return
            emitted += 1
            yield event
        gen.out.clear()
        _step(gen)


def generate_history(
    n_events: int,
    *,
    seed: int = 0,
    instances: int = 10,
    streams: int = 100,
    start: datetime = START,
) -> list[ControlEvent]:
    """The list form of :func:`iter_history` (same arguments, same events)."""
    return list(
        iter_history(n_events, seed=seed, instances=instances, streams=streams, start=start)
    )


__all__ = ["START", "generate_history", "iter_history"]
