"""Projections: the one pure fold (:mod:`projections.fold`) and everything that materialises it.

- :mod:`projections.fold`: pure. State, transitions, the fold, and pure views of state.
- :mod:`projections.io`: Kafka and PostgreSQL adapters, dead letters, snapshot store, replay.
- :mod:`projections.projector`: the Faust projector process.
- :mod:`projections.read_model`: the PostgreSQL read model process.
- :mod:`projections.testing`: synthetic histories for tests and benchmarks.

docs/architecture.md has the layers and the rule that holds them.
"""
