"""Encode messages as CloudEvents 1.0 structured JSON and decode them strictly.

Wire form (one Kafka record value)::

    {"specversion": "1.0", "id": "...", "source": "streamplane/orchestrator",
     "type": "StreamAssigned", "time": "2026-11-28T20:00:00Z",
     "datacontenttype": "application/json", "subject": "camera-17",
     "schemaversion": 1, "seq": 42, "epoch": 3, "causationid": null, "correlationid": null,
     "data": {"stream_id": "camera-17", "server_id": "w-1", ...}}

Decoding: a current-version message is decoded by msgspec Structs made from the models
(:mod:`events._fast.decoder`); failing that, parsed with orjson and validated in one native call
by its type's wire validator (:mod:`events._fast.wire`, made from the model's own schema).
Anything else takes the full path: parse with orjson, check the envelope, look the type up,
upcast older ``schemaversion`` data one step at a time, then validate with the type's model.
Every failure is an :class:`events.errors.EventError` naming the type, version and field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from events._fast.decoder import FastDecoder
from events._fast.handover import Handover
from events._fast.wire import WireDecoder
from events.base import ENVELOPE_FIELDS, Command, ControlEvent, Message
from events.commands import COMMAND_TYPES
from events.control import CONTROL_EVENT_TYPES
from events.errors import (
    MalformedMessageError,
    SchemaValidationError,
    UnknownTypeError,
    UnsupportedVersionError,
    WrongFamilyError,
)
from events.heartbeat import DesiredSet, Heartbeat
from events.upcasters import upcast

SPECVERSION = "1.0"
CONTENT_TYPE = "application/json"

_ALL: tuple[type[Message], ...] = (*CONTROL_EVENT_TYPES, *COMMAND_TYPES, Heartbeat, DesiredSet)
MESSAGE_TYPES: dict[str, type[Message]] = {cls.__name__: cls for cls in _ALL}

_REQUIRED = ("specversion", "id", "source", "type", "time", "data")
_KNOWN_ATTRS = frozenset(
    {
        *ENVELOPE_FIELDS,
        "specversion",
        "type",
        "datacontenttype",
        "subject",
        "schemaversion",
        "data",
    }
)

_CLASH = frozenset({"type", *ENVELOPE_FIELDS})
_loads = orjson.loads
#: the first fast path: msgspec Structs made from the models (made on first use)
_FAST = FastDecoder(MESSAGE_TYPES.values(), specversion=SPECVERSION, content_type=CONTENT_TYPE)
_fast_decode = _FAST.decode
#: control events checked by a replay's reader process and rebuilt in the folding one
_HANDOVER = Handover(_FAST, CONTROL_EVENT_TYPES)
#: the second: pydantic-core wire validators, for every type at its current schemaversion
_WIRE = WireDecoder(MESSAGE_TYPES.values(), specversion=SPECVERSION, content_type=CONTENT_TYPE)

M = TypeVar("M", bound=Message)


def to_wire(message: Message) -> dict[str, Any]:
    """The CloudEvents structured form of ``message`` as plain JSON-able data."""
    flat = message.model_dump(mode="json")
    type_ = flat.pop("type")
    envelope: dict[str, Any] = {
        "specversion": SPECVERSION,
        "id": flat.pop("id"),
        "source": flat.pop("source"),
        "type": type_,
        "time": flat.pop("time"),
        "datacontenttype": CONTENT_TYPE,
        "subject": message.subject,
        "schemaversion": type(message).SCHEMA_VERSION,
        "causationid": flat.pop("causationid"),
        "correlationid": flat.pop("correlationid"),
    }
    for ext in ("seq", "epoch"):
        if ext in type(message).model_fields and ext in flat:
            envelope[ext] = flat.pop(ext)
    envelope["data"] = flat
    return envelope


def encode(message: Message) -> bytes:
    """Serialise ``message`` to CloudEvents JSON bytes."""
    return orjson.dumps(to_wire(message))


def _load(raw: bytes | str | dict[str, Any]) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise MalformedMessageError(f"not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise MalformedMessageError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


def _check_envelope(obj: dict[str, Any]) -> tuple[type[Message], int]:
    missing = [k for k in _REQUIRED if k not in obj]
    if missing:
        raise MalformedMessageError(
            f"envelope lacks {', '.join(missing)}", field=missing[0], type_=obj.get("type")
        )
    unknown = sorted(set(obj) - _KNOWN_ATTRS)
    if unknown:
        raise MalformedMessageError(
            f"unknown envelope attribute(s) {unknown}", field=unknown[0], type_=obj.get("type")
        )
    if obj["specversion"] != SPECVERSION:
        raise MalformedMessageError(
            f"specversion must be {SPECVERSION!r}, got {obj['specversion']!r}",
            field="specversion",
        )
    ctype = obj.get("datacontenttype", CONTENT_TYPE)
    if ctype != CONTENT_TYPE:
        raise MalformedMessageError(
            f"datacontenttype must be {CONTENT_TYPE!r}, got {ctype!r}", field="datacontenttype"
        )
    type_ = obj["type"]
    cls = MESSAGE_TYPES.get(type_) if isinstance(type_, str) else None
    if cls is None:
        raise UnknownTypeError(f"unknown message type {type_!r}", type_=str(type_), field="type")
    version = obj.get("schemaversion", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UnsupportedVersionError(
            f"{type_}: schemaversion must be a positive integer, got {version!r}",
            type_=type_,
            field="schemaversion",
        )
    if version > cls.SCHEMA_VERSION:
        raise UnsupportedVersionError(
            f"{type_}: schemaversion {version} is newer than this build "
            f"(knows up to {cls.SCHEMA_VERSION})",
            type_=type_,
            field="schemaversion",
        )
    if not isinstance(obj["data"], dict):
        raise MalformedMessageError(
            f"{type_}: data must be a JSON object", type_=type_, field="data"
        )
    return cls, version


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and any(c in part for c in "[(=")


def _decode_current(raw: bytes | str | dict[str, Any]) -> Message | None:
    """The common case in few steps: a valid message of its type's current schema version.

    Returns None, never raises, whenever anything is off or unusual (old version, bad JSON,
    a missing or unknown attribute, an integer id, a non-UTC offset, ...): :func:`decode`
    then runs the full, step-by-step checks, which raise the precise error (or accept and
    normalise the unusual input). The type's wire validator (:mod:`events._fast.wire`, made from
    the model's own schema) accepts a subset of what the full path accepts, with an
    identical result, and never words an error. Before it, msgspec Structs made from the
    models (:mod:`events._fast.decoder`) decode the same subset, or less, ~1.5x as fast;
    what they leave (a type they cannot map, lax values such as ``"seq": "42"``) goes on
    to the wire validator.
    """
    if isinstance(raw, dict):
        return None  # a caller's dict must stay untouched; the full path copies it
    message = _fast_decode(raw)
    if message is not None:
        return message
    try:
        obj = _loads(raw)
    except orjson.JSONDecodeError:
        return None
    return _WIRE.decode(obj)


def decode(raw: bytes | str | dict[str, Any]) -> Message:
    """Decode any streamplane message; raises an :class:`EventError` subclass on bad input."""
    message = _decode_current(raw)
    return _decode_checked(raw) if message is None else message


def _decode_checked(raw: bytes | str | dict[str, Any]) -> Message:
    """The full decode, check by check, raising the precise error (or upcasting)."""
    obj = _load(raw)
    cls, version = _check_envelope(obj)
    flat = _flatten(obj, cls, version)
    try:
        return cls.model_validate(flat)
    except ValidationError as exc:
        raise _schema_error(exc, cls.__name__, version) from exc


def _flatten(obj: dict[str, Any], cls: type[Message], version: int) -> dict[str, Any]:
    """Upcast ``data`` to the current version and merge it with the envelope's fields."""
    type_ = cls.__name__
    try:
        data = upcast(type_, version, cls.SCHEMA_VERSION, obj["data"])
    except LookupError as exc:  # a missing upcaster step: this build cannot read that version
        raise UnsupportedVersionError(str(exc), type_=type_, field="schemaversion") from exc
    if "type" in data or any(k in data for k in ENVELOPE_FIELDS):
        clash = sorted(_CLASH & set(data))
        raise SchemaValidationError(
            f"{type_}: data must not repeat envelope attribute(s) {clash}",
            type_=type_,
            field=f"data.{clash[0]}",
        )
    flat = {k: v for k, v in obj.items() if k in ENVELOPE_FIELDS}
    flat.update(data)
    flat["type"] = type_
    return flat


def _schema_error(exc: ValidationError, type_: str, version: int) -> SchemaValidationError:
    err = exc.errors()[0]
    # Skip pydantic's union-member tags (``lax-or-strict[...]`` inside a union field):
    # they are schema reprs, not fields, and would make ``field`` unreadable.
    loc = ".".join(str(p) for p in err["loc"] if not _is_union_tag(p))
    where = loc if loc in ENVELOPE_FIELDS else f"data.{loc}"
    return SchemaValidationError(
        f"{type_} v{version}: {where}: {err['msg']} (got {err.get('input')!r:.200})",
        type_=type_,
        field=where,
    )


def _decode_as(raw: bytes | str | dict[str, Any], base: type[M]) -> M:
    message = _decode_current(raw)
    if message is None:
        message = _decode_checked(raw)
    if not isinstance(message, base):
        raise WrongFamilyError(
            f"expected a {base.__name__}, got {type(message).__name__}",
            type_=type(message).__name__,
            field="type",
        )
    return message


def decode_event(raw: bytes | str | dict[str, Any]) -> ControlEvent:
    """Decode a control event (``streamplane.events``)."""
    return _decode_as(raw, ControlEvent)


def decode_events_fast(raws: Sequence[bytes]) -> list[ControlEvent] | None:
    """A whole batch of control events through the fastest path only, or None if any of
    them needs more (an unusual or bad record): then decode one by one with
    :func:`decode_event`, which gives the same events and the precise errors. For replays,
    where every call saved per event counts."""
    fast = _fast_decode
    events = [fast(raw) for raw in raws]
    for event in events:
        if not isinstance(event, ControlEvent):  # None, or another family's message
            return None
    return events  # type: ignore[return-value]


def pack_events(raws: Sequence[bytes]) -> bytes | None:
    """A chunk of control events checked as :func:`decode_events_fast` checks them, packed
    for another process (:mod:`events._fast.handover`); None whenever that function gives None."""
    return _HANDOVER.pack(raws)


def unpack_events(blob: bytes) -> list[ControlEvent]:
    """The control events of a blob :func:`pack_events` made (trusted: only for blobs from
    our own process or child); they equal what :func:`decode_events_fast` gives."""
    return _HANDOVER.unpack(blob)  # type: ignore[return-value]


def decode_command(raw: bytes | str | dict[str, Any]) -> Command:
    """Decode a command (``streamplane.commands``)."""
    return _decode_as(raw, Command)


def decode_heartbeat(raw: bytes | str | dict[str, Any]) -> Heartbeat:
    """Decode a heartbeat (``streamplane.heartbeats``)."""
    return _decode_as(raw, Heartbeat)


def decode_desired(raw: bytes | str | dict[str, Any]) -> DesiredSet:
    """Decode a desired set (``streamplane.desired``)."""
    return _decode_as(raw, DesiredSet)
