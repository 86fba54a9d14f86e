"""The checks the msgspec fast path runs after msgspec decoded a value.

(See :mod:`events._fast.mapping`.)

Each equals what pydantic checks for the same value, on every input it is given (the tests
hold them to it): cheap predicates for the id and reason patterns, the RFC 3339 UTC
timestamp shape that pydantic reads the way ``datetime.fromisoformat`` then does, and IP
addresses through pydantic's own validator.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

from pydantic import IPvAnyAddress, TypeAdapter

from events._fast.codegen import Reject
from events.enrollment import KEY_ID_PATTERN, PUBLIC_KEY_PATTERN
from events.ids import ID_PATTERN

Check = Callable[[Any], bool]

ID_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:-"
REASON_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
REASON_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
HEX_CHARS = "0123456789abcdef"
B64_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
#: the last base64 digit of 32 bytes carries 2 bits of padding, which must be zero
B64_LAST_OF_32 = "AEIMQUYcgkosw048"


def is_id(text: str) -> bool:
    """``re.fullmatch`` of :data:`events.ids.ID_PATTERN` with Rust semantics (``$`` = end).

    ``strip`` removes the allowed (ASCII) characters from both ends; anything else, a
    newline or a non-ASCII letter, stays and makes the rest non-empty.
    """
    return 0 < len(text) <= 128 and not text.strip(ID_CHARS)


def is_reason(text: str) -> bool:
    """``re.fullmatch`` of ``^[a-z][a-z0-9_]{0,63}$`` with Rust semantics."""
    return 0 < len(text) <= 64 and "a" <= text[0] <= "z" and not text.strip(REASON_CHARS)


def is_key_id(text: str) -> bool:
    """``re.fullmatch`` of ``^[0-9a-f]{16}$`` (an enrolled key's id)."""
    return len(text) == 16 and not text.strip(HEX_CHARS)


def is_public_key(text: str) -> bool:
    """``re.fullmatch`` of :data:`events.enrollment.PUBLIC_KEY_PATTERN` (base64, 32 bytes)."""
    return (
        len(text) == 44
        and text[43] == "="
        and text[42] in B64_LAST_OF_32
        and not text[:42].strip(B64_CHARS)
    )


class PatternCheck(NamedTuple):
    """A cheap equivalent of pydantic's (Rust ``regex``) full match of one pattern."""

    full: Check  # equal to the full match on any string
    min_length: int  # the lengths the pattern allows (msgspec checks them natively)
    max_length: int
    #: equal to ``full`` on strings of those lengths; ``{v}`` is the value (generated code)
    inline: str


#: pattern -> its cheap check; a pattern not here makes its type unsupported
PATTERN_CHECKS: dict[str, PatternCheck] = {
    ID_PATTERN: PatternCheck(is_id, 1, 128, "not {v}.strip(ID_CHARS)"),
    # the first character is one of the allowed ones, and only a-z of them sort after "a"
    REASON_PATTERN: PatternCheck(is_reason, 1, 64, '{v}[0] >= "a" and not {v}.strip(REASON_CHARS)'),
    KEY_ID_PATTERN: PatternCheck(is_key_id, 16, 16, "not {v}.strip(HEX_CHARS)"),
    PUBLIC_KEY_PATTERN: PatternCheck(
        is_public_key,
        44,
        44,
        '{v}[43] == "=" and {v}[42] in B64_LAST and not {v}[:42].strip(B64_CHARS)',
    ),
}
#: names the inline checks use
INLINE_NAMES = {
    "ID_CHARS": ID_CHARS,
    "REASON_CHARS": REASON_CHARS,
    "HEX_CHARS": HEX_CHARS,
    "B64_CHARS": B64_CHARS,
    "B64_LAST": B64_LAST_OF_32,
    "isfinite": math.isfinite,
}

_fromisoformat = datetime.fromisoformat


def utc_time(text: str) -> datetime:
    """``YYYY-MM-DDTHH:MM:SS[.f{1,6}](Z|±00:00)`` as pydantic + ``_aware_utc`` read it.

    The shape is checked here (so ``fromisoformat``'s other ISO forms never get through);
    ``fromisoformat`` checks the digits and the ranges (Feb 30 fails, as in pydantic).
    """
    if len(text) == 27 and text[26] == "Z":  # the form encode writes: skip the general checks
        if text[4:20:3] == "--T::." and text.isascii() and text[20:26].isdigit():
            return _fromisoformat(text)  # "Z": tzinfo is datetime.UTC
        raise Reject(text)
    end = len(text) - 1 if text[-1] == "Z" else len(text) - 6
    if not (
        text[4:17:3] == "--T::"
        and text.isascii()
        and (end == 19 or (21 <= end <= 26 and text[19] == "." and text[20:end].isdigit()))
        and (text[-1] == "Z" or (text[end] in "+-" and text[end + 3] == ":"))
    ):
        raise Reject(text)
    value = _fromisoformat(text)
    if value.tzinfo is not UTC:  # a zero offset (+00:00, -00:00) gives datetime.UTC itself
        raise Reject(text)
    return value


ip = TypeAdapter(IPvAnyAddress).validate_python


def ip_text(text: str) -> str:
    """An address checked as pydantic checks it, handed over as text (msgpack has no IP
    type); ``ipaddress.ip_address`` makes the same object of it again."""
    return str(ip(text))
