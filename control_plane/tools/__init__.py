"""Developer tools: the demo, the local Kafka/PostgreSQL launchers, the process harness."""
