"""Canonical JSON form of a :class:`ClusterState`: for golden files, digests and snapshots.

``state_to_jsonable(state)`` turns the state into plain JSON data, the same for equal states
whatever the order in which the fold built them: maps become dicts sorted by key, frozensets
sorted lists, tuples lists, enums their values, datetimes ISO 8601 strings, pydantic values
their JSON dump. ``state_digest(state)`` is the SHA-256 of that data serialised by orjson with
sorted keys, so two projections can be compared byte for byte by one short string.
``state_from_jsonable(data)`` is the exact inverse, driven by the state classes' type hints
(so it follows new fields without changes here).
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import types
import typing
from datetime import datetime
from enum import Enum
from typing import Any

import immutables
import orjson
from pydantic import BaseModel

from projections.fold.state import ClusterState

#: orjson options for digests and golden files (sorted keys make the bytes canonical)
DUMPS_OPTIONS = orjson.OPT_SORT_KEYS
Json = dict[str, Any] | list[Any] | str | int | float | bool | None


def _key(value: object) -> Any:
    return value.value if isinstance(value, Enum) else value


class JsonMemo:
    """The canonical form of each record (dataclass) of the last state converted with it,
    for the next conversion to reuse: records are frozen, so one that did not change is the
    same object, and a state converted again costs only what changed (the orchestrator's
    snapshots of thousands of enrollments and instances). It keeps the records of the last
    conversion only (strong references: an id is never reused while it is held). Not for
    two conversions at once. The forms it hands out are shared: read them, never change
    them."""

    __slots__ = ("_last", "_next", "hits")

    def __init__(self) -> None:
        self._last: dict[int, tuple[object, Json]] = {}
        self._next: dict[int, tuple[object, Json]] = {}
        self.hits = 0

    def get(self, value: object) -> Json | None:
        held = self._last.get(id(value))
        if held is None or held[0] is not value:
            return None
        self._next[id(value)] = held
        self.hits += 1
        return held[1]

    def put(self, value: object, form: Json) -> None:
        self._next[id(value)] = (value, form)

    def turn(self) -> None:
        """End a conversion: what it used is what the next one may reuse."""
        self._last, self._next = self._next, {}


def _to_jsonable(value: object, memo: JsonMemo | None = None) -> Json:
    if isinstance(value, Enum):  # before str/int: StrEnum values are str instances too
        return _to_jsonable(value.value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, BaseModel):
        dumped: dict[str, Any] = value.model_dump(mode="json")
        return dumped
    if isinstance(value, immutables.Map):
        return {str(_key(k)): _to_jsonable(value[k], memo) for k in sorted(value, key=_key)}
    if isinstance(value, frozenset | set):
        return [_to_jsonable(v, memo) for v in sorted(value, key=_key)]
    if isinstance(value, tuple | list):
        return [_to_jsonable(v, memo) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if memo is not None and (held := memo.get(value)) is not None:
            return held
        form = {
            f.name: _to_jsonable(getattr(value, f.name), memo) for f in dataclasses.fields(value)
        }
        if memo is not None:
            memo.put(value, form)
        return form
    raise TypeError(f"no canonical JSON form for {type(value).__name__}: {value!r:.200}")


def state_to_jsonable(state: ClusterState, memo: JsonMemo | None = None) -> dict[str, Any]:
    """The canonical JSON-able form of ``state`` (see the module docstring); with ``memo``,
    the records unchanged since the memo's last conversion are not converted again."""
    data = _to_jsonable(state, memo)
    if memo is not None:
        memo.turn()
    assert isinstance(data, dict)
    return data


def state_dumps(state: ClusterState, *, indent: bool = False) -> bytes:
    """``state_to_jsonable`` serialised with sorted keys (indented for golden files)."""
    options = DUMPS_OPTIONS | (orjson.OPT_INDENT_2 if indent else 0)
    return orjson.dumps(state_to_jsonable(state), option=options)


def state_digest(state: ClusterState) -> str:
    """SHA-256 (hex) of the canonical bytes of ``state``: equal states, equal digests."""
    return hashlib.sha256(state_dumps(state)).hexdigest()


# --- the inverse ------------------------------------------------------------------------


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _from_jsonable(hint: Any, data: Any) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is types.UnionType or origin is typing.Union:
        if data is None:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _from_jsonable(inner, data)
    if origin is immutables.Map:
        key_type, value_type = args
        return immutables.Map(
            (_from_jsonable(key_type, k), _from_jsonable(value_type, v)) for k, v in data.items()
        )
    if origin is tuple:
        return tuple(_from_jsonable(args[0], v) for v in data)
    if origin is frozenset:
        return frozenset(_from_jsonable(args[0], v) for v in data)
    if hint is datetime:
        return datetime.fromisoformat(data)
    if isinstance(hint, type) and issubclass(hint, Enum | BaseModel):
        return hint.model_validate(data) if issubclass(hint, BaseModel) else hint(data)
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _dataclass_from_jsonable(hint, data)
    if hint in (int, str, bool, float):
        return hint(data)
    raise TypeError(f"cannot rebuild {hint!r} from canonical JSON")


def _dataclass_from_jsonable(cls: type, data: dict[str, Any]) -> Any:
    hints = _hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"{cls.__name__}: unknown field(s) {unknown} in canonical JSON")
    return cls(**{name: _from_jsonable(hints[name], value) for name, value in data.items()})


def state_from_jsonable(data: dict[str, Any]) -> ClusterState:
    """Rebuild the exact state ``state_to_jsonable`` was given (fields absent take defaults)."""
    state: ClusterState = _dataclass_from_jsonable(ClusterState, data)
    return state


__all__ = [
    "DUMPS_OPTIONS",
    "state_digest",
    "state_dumps",
    "state_from_jsonable",
    "state_to_jsonable",
]
