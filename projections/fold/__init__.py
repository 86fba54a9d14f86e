"""The pure fold: ``apply(state, event) -> state`` and the pure views of state.

No clock, no randomness, no I/O. Everything that materialises state imports it from here.
"""

from projections.fold.driver import (
    RECENT_WINDOW,
    StepFolder,
    apply,
    fold,
    fold_from,
    persistent_fold,
)

__all__ = ["RECENT_WINDOW", "StepFolder", "apply", "fold", "fold_from", "persistent_fold"]
