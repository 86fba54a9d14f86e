"""Helpers shared by the end-to-end and chaos tests (real Kafka, real processes)."""
