"""The projector's, the read model's and the database manager's metrics, derived from what
they hold (no Kafka, no PostgreSQL: nothing here opens a connection)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from projections.io.db_metrics import db_samples
from projections.io.postgres import DatabaseSettings, ResilientDatabaseManager
from projections.io.read_store import ReadModelSettings
from projections.projector.metrics import fold_lag, projector_samples
from projections.read_model import ReadModelProjector
from projections.read_model.metrics import ReadModelSnapshot, read_model_samples

DSN = "postgresql://reader:s3cret-pw@db.example:5432/streamplane"


def test_the_projector_lag_leaves_out_the_commit_marker_that_ends_the_log() -> None:
    assert fold_lag(None, 10) is None  # high watermark not known yet
    assert fold_lag(11, 10) == 0  # offset 10 is the last transaction's commit marker
    assert fold_lag(11, 11) == 0  # started from a replay that ended past the marker
    assert fold_lag(15, 10) == 4  # one transaction of 4 events not folded yet
    assert projector_samples(seq=7, folded=3) == {
        "streamplane_projector_applied_seq": 7,
        "streamplane_projector_events_folded": 3,
        "streamplane_projector_active": 0,  # a standby until the group hands it the log
        "streamplane_projector_takeovers": 0,
        "streamplane_projector_resync_writes": {
            ("topic",): 0,
            ("instances",): 0,
            ("assignments",): 0,
        },
    }
    holder = projector_samples(seq=7, folded=3, active=True, takeovers=2, resynced={"topic": 5})
    assert holder["streamplane_projector_active"] == 1
    assert holder["streamplane_projector_takeovers"] == 2
    assert holder["streamplane_projector_resync_writes"] == {
        ("topic",): 5,
        ("instances",): 0,
        ("assignments",): 0,
    }


def test_read_model_lag_is_the_log_end_minus_the_tracking_row() -> None:
    unknown = read_model_samples(ReadModelSnapshot(0, 0, 0, None, 0, 0))
    assert "streamplane_read_model_lag_offsets" not in unknown  # before the first fetch
    behind = read_model_samples(ReadModelSnapshot(40, 50, 80, 90, 40, 3))
    assert behind["streamplane_read_model_lag_offsets"] == 40
    assert behind["streamplane_consumer_lag_offsets"] == {("events",): 10}
    assert behind["streamplane_read_model_applied_seq"] == 40
    done = read_model_samples(ReadModelSnapshot(40, 90, 90, 90, 40, 3))
    assert done["streamplane_read_model_lag_offsets"] == 0
    assert done["streamplane_read_model_waiting_for_database"] == 0


def test_read_model_shows_that_it_waits_for_the_database() -> None:
    waiting = read_model_samples(ReadModelSnapshot(40, 50, 50, 90, 40, 3, True, 2))
    assert waiting["streamplane_read_model_waiting_for_database"] == 1
    assert waiting["streamplane_read_model_database_pauses"] == 2
    assert waiting["streamplane_read_model_lag_offsets"] == 40  # the events piling up


def test_database_metrics_follow_the_manager_and_show_no_secret() -> None:
    db = ResilientDatabaseManager(
        DSN, settings=DatabaseSettings(pool_max=7, breaker_threshold=2), rand=lambda: 0.0
    )
    samples = db_samples(db)
    assert samples["streamplane_db_pool_open_connections"] == 0
    assert samples["streamplane_db_pool_max_connections"] == 7
    assert samples["streamplane_db_breaker_state"] == {
        ("closed",): 1.0,
        ("open",): 0.0,
        ("half_open",): 0.0,
    }
    db.handle_deadlock(RuntimeError("deadlock detected"), 0)
    db.breaker.failure()
    db.breaker.failure()
    db.lock_timeouts += 1
    samples = db_samples(db)
    assert samples["streamplane_db_deadlocks"] == 1
    assert samples["streamplane_db_lock_timeouts"] == 1
    assert samples["streamplane_db_breaker_state"][("open",)] == 1.0  # type: ignore[index]


def test_a_read_model_exports_into_its_own_registry_or_the_one_it_is_given() -> None:
    own = ReadModelProjector(DSN, settings=ReadModelSettings())
    text = generate_latest(own.metrics.registry).decode()
    assert "streamplane_event_loop_lag_seconds" in text and "process_cpu_seconds_total" in text
    assert "streamplane_db_breaker_state" in text and "s3cret" not in text
    assert own.metrics.registry.get_sample_value("streamplane_read_model_applied_seq") == 0

    registry = CollectorRegistry()  # the API's, say: it serves it and has its own loop lag
    hosted = ReadModelProjector(DSN, settings=ReadModelSettings(), registry=registry)
    assert hosted.metrics.registry is registry and hosted.metrics.loop_lag is None
    assert registry.get_sample_value("streamplane_read_model_events_applied_total") == 0
    assert registry.get_sample_value("streamplane_event_loop_lag_seconds") is None
