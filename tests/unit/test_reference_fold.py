"""The written contract is enough to re-fold the log: ``examples/reference_fold.py``, written
from docs/contract.md with no streamplane import, agrees with ``projections.fold.fold`` on
every field the contract covers, over the golden logs, generated histories and corrupted ones
(docs/contract.md, "The proof that this page is enough"). The two folds side by side are
in ``tests/support/reference_fold.py``.
"""

from __future__ import annotations

import ast
import random
import subprocess
import sys
from collections import Counter

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st
from support.reference_fold import (
    CONTRACT,
    GOLDEN_LOGS,
    SCRIPT,
    assert_agree,
    reference,
    reference_fold,
    wire,
)

from events import encode
from events.base import ControlEvent
from events.control import CONTROL_EVENT_TYPES, StreamWaiting
from projections.testing.synthetic import generate_history

# --- the reference is what it claims to be ------------------------------------------------


def test_the_reference_imports_only_the_standard_library() -> None:
    tree = ast.parse(SCRIPT.read_text(encoding="utf-8"))
    imported = {
        (node.module if isinstance(node, ast.ImportFrom) else alias.name).split(".")[0]
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert imported and imported <= set(sys.stdlib_module_names) | {"__future__"}, imported


def test_the_reference_stays_short() -> None:
    assert len(SCRIPT.read_text(encoding="utf-8").splitlines()) < 260


def test_the_contract_and_the_reference_name_every_control_event_type() -> None:
    text = CONTRACT.read_text(encoding="utf-8")
    names = [t.__name__ for t in CONTROL_EVENT_TYPES]
    assert [n for n in names if f"`{n}`" not in text] == []
    assert sorted(reference.TYPES) == sorted(names)


def test_it_runs_as_a_script_on_standard_input() -> None:
    log = GOLDEN_LOGS[0].read_bytes()
    done = subprocess.run(
        [sys.executable, "-I", str(SCRIPT)], input=log, capture_output=True, timeout=60, check=True
    )
    out = orjson.loads(done.stdout)
    assert out == reference_fold(log.decode().splitlines()) and out["seq"] > 0


# --- it agrees with streamplane's fold ------------------------------------------------------


def test_it_agrees_on_every_golden_log() -> None:
    assert len(GOLDEN_LOGS) >= 5
    for path in GOLDEN_LOGS:
        ours = assert_agree(path.read_text(encoding="utf-8").splitlines())
        assert ours["seq"] > 0 and ours["instances"] and ours["streams"], path.name


def test_the_golden_logs_reach_the_rules_that_matter() -> None:
    """Not vacuous: the goldens have findings of several kinds, a v1 RebalanceCompleted (read
    through the upcaster) and a stream waiting for capacity."""
    kinds: Counter[str] = Counter()
    for path in GOLDEN_LOGS:
        lines = path.read_text(encoding="utf-8").splitlines()
        kinds.update(kind for _, kind in reference_fold(lines)["findings"])
    assert {"seq_gap", "conflicting_seq", "stale_epoch", "two_owners", "capacity_exceeded"} <= set(
        kinds
    )


@settings(max_examples=40, deadline=None, database=None)
@given(
    n=st.integers(1, 1500),
    seed=st.integers(0, 2**32 - 1),
    instances=st.integers(1, 8),
    streams=st.integers(0, 50),
)
def test_it_agrees_on_generated_histories(n: int, seed: int, instances: int, streams: int) -> None:
    history = generate_history(n, seed=seed, instances=instances, streams=streams)
    ours = assert_agree(wire(history))
    assert ours["finding_count"] == 0


def test_a_long_history_has_every_type_and_agrees() -> None:
    """Failures, migrations, rebalances, drains, new terms, and streams waiting for capacity."""
    history = generate_history(10_000, seed=0)
    assert {type(e) for e in history} == set(CONTROL_EVENT_TYPES)
    assert any(isinstance(e, StreamWaiting) for e in history)
    assert_agree(wire(history))


def corrupt(history: list[ControlEvent], rng: random.Random, edits: int) -> list[str]:
    """A valid history with events dropped, repeated, moved, re-aimed at another stream or
    instance, given another epoch or seq, and undecodable lines put in: every gate rule and
    content rule of docs/contract.md gets its chance."""
    events: list[ControlEvent] = list(history)
    streams = sorted({str(getattr(e, "stream_id", "s0")) for e in events} | {"ghost"})
    servers = sorted({str(getattr(e, "server_id", "w0")) for e in events} | {"nobody"})
    garbage = [
        "not json",
        '{"type": "StreamAssigned"}',
        orjson.dumps({**orjson.loads(encode(events[-1])), "schemaversion": 99}).decode(),
        orjson.dumps({**orjson.loads(encode(events[-1])), "type": "SomethingNew"}).decode(),
    ]
    for _ in range(edits):
        i = rng.randrange(len(events))
        e, op = (
            events[i],
            rng.choice(["drop", "repeat", "move", "stream", "server", "epoch", "seq"]),
        )
        if op == "drop" and len(events) > 1:
            del events[i]
        elif op == "repeat":
            events.insert(rng.randrange(i, len(events) + 1), e)
        elif op == "move":
            events.insert(rng.randrange(len(events) + 1), events.pop(i))
        elif op == "stream" and hasattr(e, "stream_id"):
            events[i] = e.model_copy(update={"stream_id": rng.choice(streams)})
        elif op == "server" and hasattr(e, "server_id"):
            events[i] = e.model_copy(update={"server_id": rng.choice(servers)})
        elif op == "epoch":
            events[i] = e.model_copy(update={"epoch": rng.randint(0, e.epoch + 2)})
        elif op == "seq":
            events[i] = e.model_copy(update={"seq": rng.randint(1, e.seq + 3)})
    lines: list[str | ControlEvent] = list(events)
    for text in garbage:
        lines.insert(rng.randrange(len(lines) + 1), text)
    return [x if isinstance(x, str) else encode(x).decode() for x in lines]


@settings(max_examples=150, deadline=None, database=None)
@given(
    n=st.integers(2, 400),
    seed=st.integers(0, 2**32 - 1),
    instances=st.integers(1, 6),
    streams=st.integers(0, 30),
    edits=st.integers(1, 12),
)
def test_it_agrees_on_corrupted_histories(
    n: int, seed: int, instances: int, streams: int, edits: int
) -> None:
    history = generate_history(n, seed=seed, instances=instances, streams=streams)
    ours = assert_agree(corrupt(history, random.Random(seed), edits))
    assert ours["undecodable"] == 4


def test_the_corruptions_reach_every_finding_kind() -> None:
    """Not vacuous: over a fixed set of corrupted histories, every kind of finding occurs."""
    kinds: Counter[str] = Counter()
    for seed in range(60):
        history = generate_history(300, seed=seed, instances=3, streams=20)
        lines = corrupt(history, random.Random(seed), 12)
        kinds.update(kind for _, kind in assert_agree(lines)["findings"])
    wanted = {"seq_gap", "conflicting_seq", "stale_epoch", "unknown_epoch", "two_owners",
              "capacity_exceeded", "unknown_stream", "unknown_instance",
              "invalid_transition"}  # fmt: skip
    assert wanted <= set(kinds), kinds


def test_the_duplicate_window_is_4096_positions() -> None:
    """An event repeated within 4096 positions is a duplicate (no finding); older, it is
    ``stale_seq``; the same seq with another id is ``conflicting_seq``."""
    history = generate_history(5000, seed=4, instances=4, streams=30)
    last = history[-1]
    # in the current term, so that only their positions count
    kept, forgotten = (history[i].model_copy(update={"epoch": last.epoch}) for i in (904, 903))
    assert (kept.seq, forgotten.seq) == (last.seq - 4095, last.seq - 4096)
    recent = history[4500]
    other = recent.model_copy(update={"id": "another-id"})
    ours = assert_agree(wire([*history, recent, kept, forgotten, other]))
    assert ours["findings"] == [[forgotten.seq, "stale_seq"], [other.seq, "conflicting_seq"]]


def test_events_before_the_first_election_and_a_term_never_opened() -> None:
    """A LeaderElected of epoch 0, and events of epoch 0 before any term, are applied; a term
    without its LeaderElected is ``unknown_epoch`` and moves nothing; its LeaderElected,
    arriving later, opens it (after a ``seq_gap``)."""
    first, *rest = generate_history(60, seed=5, instances=3, streams=5)

    def renumbered(events: list[ControlEvent], epoch: int, seq: int) -> list[ControlEvent]:
        return [e.model_copy(update={"epoch": epoch, "seq": seq + k}) for k, e in enumerate(events)]

    before = renumbered([first, *rest[:20]], 0, 1)  # LeaderElected(epoch 0), then epoch 0
    never = renumbered(rest[20:30], 2, 22)  # term 2, not opened yet
    opened = renumbered([first, *rest[40:50]], 2, 40)  # LeaderElected(epoch 2), its events
    ours = assert_agree(wire([*before, *never, *opened]))
    kinds = [k for _, k in ours["findings"]]
    assert kinds[:11] == ["unknown_epoch"] * 10 + ["seq_gap"]
    assert (ours["epoch"], ours["seq"]) == (2, 50)
    assert ours["leader_id"] == first.leader_id  # type: ignore[attr-defined]
