"""The pure fold: ``apply(state, event) -> state`` and the pure views of state.

No clock, no randomness, no I/O. Everything that materialises state imports it from here.
"""

from projections.fold.driver import (
    RECENT_WINDOW,
    Folder,
    HalfWrittenError,
    StepFolder,
    apply,
    apply_tracked,
    fold,
    fold_from,
    fold_until,
)

__all__ = [
    "RECENT_WINDOW",
    "Folder",
    "HalfWrittenError",
    "StepFolder",
    "apply",
    "apply_tracked",
    "fold",
    "fold_from",
    "fold_until",
]
