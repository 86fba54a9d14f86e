"""Identifier types shared by every message.

``stream_id`` and ``server_id`` are strings of 1-128 letters, digits and ``._:-`` so that
``camera-17`` works as well as the seed's integer ids (an int ``42`` is accepted and becomes
``"42"``).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, StringConstraints

ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"


def _int_to_str(value: Any) -> Any:
    # bool is an int subclass; True is not an id.
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


# The BeforeValidator comes last so that it wraps the constrained str: that way the pattern
# also appears in the generated JSON Schema (placed first, pydantic drops it from the schema).
_Id = Annotated[
    str,
    StringConstraints(pattern=ID_PATTERN, min_length=1, max_length=128),
    BeforeValidator(_int_to_str),
]

StreamId = _Id
ServerId = _Id
Incarnation = _Id
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Reason = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]
ShortText = Annotated[str, StringConstraints(max_length=4096)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=64)]
#: who issued a command (an API token's name, the CLI's OS user): any 1 to 128 characters
Principal = Annotated[str, StringConstraints(min_length=1, max_length=128)]
