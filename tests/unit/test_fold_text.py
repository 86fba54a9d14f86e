"""projections.fold.text: NUL becomes U+FFFD in every string at any depth, nothing else
changes (a literal backslash-u0000 stays), and values without NUL come back as the very
same objects; the JSON values of the projections are cleaned the same way."""

from __future__ import annotations

import orjson
from hypothesis import given
from hypothesis import strategies as st

from projections.fold.assignments import _plain
from projections.fold.text import REPLACEMENT, row_without_nul, without_nul

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in [*_strings(k), *_strings(v)]]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


@given(json_values)
def test_every_nul_is_replaced_and_nothing_else(value: object) -> None:
    cleaned = without_nul(value)
    assert not any("\x00" in s for s in _strings(cleaned))
    assert _strings(cleaned) == [s.replace("\x00", REPLACEMENT) for s in _strings(value)]
    if not any("\x00" in s for s in _strings(value)):
        assert cleaned is value


def test_rows_and_json_values() -> None:
    row = (1, "a\x00b", None, {"k": "v\x00"})
    assert row_without_nul(row) == (1, "a\ufffdb", None, {"k": "v\x00"})  # jsonb: the codec's
    clean = (1, "ab", None)
    assert row_without_nul(clean) is clean
    assert _plain({"error": "x\x00y", "path": "C:\\u0000"}) == {
        "error": "x\ufffdy",
        "path": "C:\\u0000",  # a literal backslash-u0000 is text, not a NUL
    }
    assert orjson.dumps(_plain(["\x00"])) == orjson.dumps([REPLACEMENT])
