"""Adapters the processes share: Kafka clients with safe defaults, topic checks, dead letters,
the snapshot store, the replay (log reader) and the PostgreSQL manager."""
