"""The pure decision core: ``decide(state, liveness, inputs, *, now, new_id, config)``.

No clock, no randomness, no environment, no I/O: every input is an argument. The orchestrator
process (:mod:`control_plane.orchestrator`) is its shell.
"""

from control_plane.decide.cycle import (
    Decision,
    Inputs,
    all_desired,
    begin_term,
    decide,
    desired_changes,
    desired_set,
)

__all__ = [
    "Decision",
    "Inputs",
    "all_desired",
    "begin_term",
    "decide",
    "desired_changes",
    "desired_set",
]
