"""The PostgreSQL read model process: ``fold(control log)`` as tables (docs/read_side.md)."""

from projections.read_model.service import ReadModelProjector

__all__ = ["ReadModelProjector"]
