"""Pure: text as the projections store it. PostgreSQL's ``text`` and ``jsonb`` cannot hold
U+0000 (NUL), which the contract allows in free text (a worker's error message, an event
id). The views write U+FFFD (the replacement character) in its place, everywhere alike: the
read model's rows and the values of the Faust tables (the same functions build the values
the consistency checks expect, so a view with a replaced NUL is not a drift). The control
log itself keeps the text as it was written.

Without this, one heartbeat whose error message held a NUL stopped the read model for good:
PostgreSQL refused the batch, every time (``tests/integration/test_read_model_text.py``).
"""

from __future__ import annotations

from typing import Any

NUL = "\x00"
#: what the views write for a NUL
REPLACEMENT = "\ufffd"


def without_nul(value: Any) -> Any:
    """``value`` with every NUL in its strings (keys too, in dicts, lists and tuples at any
    depth) replaced; the same object when there is none."""
    if isinstance(value, str):
        return value.replace(NUL, REPLACEMENT) if NUL in value else value
    if isinstance(value, dict):
        items = [(without_nul(k), without_nul(v)) for k, v in value.items()]
        if all(a is k and b is v for (a, b), (k, v) in zip(items, value.items(), strict=True)):
            return value
        return dict(items)
    if isinstance(value, list | tuple):
        members = [without_nul(v) for v in value]
        if all(a is b for a, b in zip(members, value, strict=True)):
            return value
        return type(value)(members)
    return value


def row_without_nul(row: tuple[Any, ...]) -> tuple[Any, ...]:
    """A row whose text fields hold no NUL (``jsonb`` fields are the codec's to clean:
    :func:`without_nul` on the value when its JSON holds an escaped NUL)."""
    for field in row:
        if isinstance(field, str) and NUL in field:
            return tuple(without_nul(f) if isinstance(f, str) else f for f in row)
    return row


__all__ = ["NUL", "REPLACEMENT", "row_without_nul", "without_nul"]
