-- The PostgreSQL read model of streamplane: fold(control log), kept by
-- projections.read_model.ReadModelProjector. Tables are created in the connection's
-- search_path (one schema per deployment or test). Never written by anything else.

CREATE TABLE IF NOT EXISTS instances (
    server_id        text PRIMARY KEY,
    incarnation      text NOT NULL,
    status           text NOT NULL,           -- active|suspected|quarantined|failed|left
    draining         boolean NOT NULL,
    max_streams      integer NOT NULL,
    current_streams  integer NOT NULL,
    load             integer NOT NULL,
    zone             text,
    last_heartbeat   timestamptz,
    data             jsonb NOT NULL,          -- every EnhancedInstance field
    as_of_seq        bigint NOT NULL          -- seq of the batch that last wrote the row
);

CREATE TABLE IF NOT EXISTS streams (
    stream_id        text PRIMARY KEY,
    server_id        text,                    -- the owner, null while unassigned
    incarnation      text,
    status           text NOT NULL,           -- unassigned|assigned|running|migrating|failed
    weight           integer NOT NULL,
    priority         integer NOT NULL,
    assigned_at      timestamptz,
    migration        jsonb,                   -- the migration in flight, if any
    reason           text NOT NULL,           -- why it last changed
    data             jsonb NOT NULL,          -- every StreamAssignment field
    as_of_seq        bigint NOT NULL          -- seq of the event that last changed it
);
CREATE INDEX IF NOT EXISTS streams_by_server ON streams (server_id);
CREATE INDEX IF NOT EXISTS streams_by_status ON streams (status);

CREATE TABLE IF NOT EXISTS migrations (
    migration_id     text PRIMARY KEY,
    stream_id        text NOT NULL,
    from_server      text NOT NULL,
    to_server        text NOT NULL,
    reason           text NOT NULL,
    plan_id          text,
    started_at       timestamptz NOT NULL,
    deadline         timestamptz NOT NULL,
    started_seq      bigint NOT NULL,
    outcome          text NOT NULL DEFAULT 'in_flight',   -- in_flight|completed|aborted
    outcome_reason   text,
    ended_at         timestamptz,
    ended_seq        bigint
);
CREATE INDEX IF NOT EXISTS migrations_by_stream ON migrations (stream_id, started_seq);

-- An audit copy of the control log (one row per record that decoded).
CREATE TABLE IF NOT EXISTS events (
    log_offset       bigint PRIMARY KEY,      -- offset in <prefix>.events partition 0
    seq              bigint NOT NULL,
    epoch            bigint NOT NULL,
    id               text NOT NULL,
    type             text NOT NULL,
    time             timestamptz NOT NULL,
    subject          text,
    reason           text,
    causationid      text,
    correlationid    text,
    finding          text,                    -- why the fold refused it; null = applied
    data             jsonb NOT NULL           -- the CloudEvents ``data``
);
CREATE INDEX IF NOT EXISTS events_by_subject ON events (subject, log_offset);
CREATE INDEX IF NOT EXISTS events_by_time ON events (time);
CREATE INDEX IF NOT EXISTS events_by_causation ON events (causationid);

-- One row per projection: cluster-wide facts and SystemHealth as of ``seq``.
CREATE TABLE IF NOT EXISTS cluster (
    projection       text PRIMARY KEY,
    seq              bigint NOT NULL,
    epoch            bigint NOT NULL,
    leader_id        text,
    maintenance      boolean NOT NULL,
    last_event_time  timestamptz,
    finding_count    bigint NOT NULL,
    health           jsonb NOT NULL
);

-- Tracking (pyeventsourcing's idea): the next log offset to apply, written in the same
-- transaction as the rows above, so re-applying a batch is a no-op.
CREATE TABLE IF NOT EXISTS projection_tracking (
    projection       text PRIMARY KEY,
    next_offset      bigint NOT NULL,
    last_seq         bigint NOT NULL,
    updated_at       timestamptz NOT NULL DEFAULT now()
);
