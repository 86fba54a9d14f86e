"""What a projector writes when it takes the control log over (pure ``takeover.plan``), and
the settings that choose its table store and changelog replication."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
import pytest
from faust import stores
from pydantic import ValidationError

from projections.fold import fold
from projections.fold.assignments import RESYNC_REASON, assignment_value, instance_value
from projections.fold.state import ClusterState
from projections.projector.settings import ProjectorSettings
from projections.projector.stores import RocksDBStore
from projections.projector.takeover import plan
from projections.testing.synthetic import generate_history


def _published(upto: ClusterState) -> dict[str, Any]:
    """What the topic shows after a holder published everything up to ``upto``."""
    return {
        sid: assignment_value(s, seq=upto.seq, epoch=upto.epoch, time=None, reason="x")
        for sid, s in upto.streams.items()
    }


def test_a_takeover_writes_nothing_when_the_outputs_equal_the_caught_up_fold() -> None:
    state = fold(generate_history(400, seed=3, instances=4, streams=20))
    topic = _published(state)
    instances = {k: instance_value(i, seq=state.seq) for k, i in state.instances.items()}
    writes = plan(state, topic=topic, instances=instances, assignments=topic)
    assert writes == ([], [], [])


def test_a_takeover_brings_stale_outputs_forward_and_never_back() -> None:
    history = generate_history(600, seed=5, instances=4, streams=20)
    old, state = fold(history[:300]), fold(history)
    # the dead holder got as far as seq 300; the caught-up fold is at 600
    topic = _published(old) | {"ghost": {"stream_id": "ghost", "as_of_seq": 1}}
    writes = plan(state, topic=topic, instances={}, assignments={})
    published = {u.key: u.value for u in writes.published}
    assert published, "the log moved on: something must be republished"
    assert published.pop("ghost") is None  # a stream the fold does not have: a tombstone
    for sid, value in published.items():
        if value is None:  # deregistered since seq 300
            assert sid in old.streams and sid not in state.streams
            continue
        assert value["as_of_seq"] == state.seq > old.seq
        assert value["reason"] == RESYNC_REASON
    # the tables were empty (a new group): every key is written
    assert {u.key for u in writes.instances} == set(state.instances)
    assert {u.key for u in writes.assignments} == set(state.streams)


def test_the_store_and_replication_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    default = ProjectorSettings(topic_prefix="p")
    assert default.store_url == "memory://"
    assert default.projector_replication_factor is None  # min(brokers, 3), asked at start
    monkeypatch.setenv("STREAMPLANE_PROJECTOR_STORE", "rocksdb")
    monkeypatch.setenv("STREAMPLANE_PROJECTOR_DATA_DIR", str(tmp_path))
    rocks = ProjectorSettings(topic_prefix="p")
    assert rocks.store_url == "streamplane-rocksdb://"
    # Faust finds the store by that URL (the entry point in pyproject.toml)
    assert stores.by_url(rocks.store_url) is RocksDBStore
    assert rocks.data_dir == tmp_path / "p-projector"
    monkeypatch.setenv("STREAMPLANE_PROJECTOR_STORE", "disk")
    with pytest.raises(ValidationError, match="projector_store"):
        ProjectorSettings()


def test_the_rocksdb_store_takes_a_write_outside_a_stream_into_partition_0(
    tmp_path: Path,
) -> None:
    app = faust.App("t-store", store="streamplane-rocksdb://", datadir=str(tmp_path))
    table = app.Table("assignments", partitions=1, use_partitioner=True)
    store = table.data
    assert isinstance(store, RocksDBStore)
    store["s1"] = {"server_id": "w-1"}  # a takeover's write: no event being processed
    assert store._key_index[b'"s1"'] == 0
    assert store._db_for_partition(0)[b'"s1"'] == b'{"server_id":"w-1"}'
    spread = app.Table("liveness", partitions=6).data
    with pytest.raises(TypeError, match="liveness"):
        spread["w-1"] = {}  # which partition? refused, as Faust's own store does
