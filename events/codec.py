"""Encode messages as CloudEvents 1.0 structured JSON; decode them, two paths, one contract.

Wire form (one Kafka record value)::

    {"specversion": "1.0", "id": "...", "source": "streamplane/orchestrator",
     "type": "StreamAssigned", "time": "2026-11-28T20:00:00Z",
     "datacontenttype": "application/json", "subject": "camera-17",
     "schemaversion": 1, "seq": 42, "epoch": 3, "causationid": null, "correlationid": null,
     "data": {"stream_id": "camera-17", "server_id": "w-1", ...}}

:func:`decode` (and its family wrappers) is the one public entry. The contract is the
pydantic models; two paths decode against it:

- the *fast path* (:mod:`events._fast.decoder`, private): msgspec Structs generated from the
  models read a current-version message in the form :func:`encode` writes, then the model is
  made without a second validation. It never raises: anything unusual gives None;
- the *strict path* (:func:`_decode_checked`): parse with orjson, check the envelope, look the
  type up, upcast older ``schemaversion`` data one step at a time, then ``model_validate``.
  It decodes what the fast path leaves (old versions, lax values such as ``"seq": "42"``, an
  integer id, an offset other than UTC, a caller's dict) and words every failure as an
  :class:`events.errors.EventError` naming the type, version and field.

Whatever the fast path accepts is the very object the strict path gives (same ``__dict__``
in order, same ``model_fields_set``), and it accepts nothing the strict path rejects:
``tests/unit/test_codec_fast_path.py`` and ``test_codec_msgspec.py`` hold it to that. A
replay may also split the fast path over two processes (:func:`pack_events`,
:func:`unpack_events`; :mod:`events._fast.handover`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from events._fast.decoder import FastDecoder
from events._fast.handover import Handover
from events.alerts import ALERT_TYPES, AlertFired, AlertResolved
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

_ALL: tuple[type[Message], ...] = (
    *CONTROL_EVENT_TYPES,
    *COMMAND_TYPES,
    Heartbeat,
    DesiredSet,
    *ALERT_TYPES,
)
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
#: the fast path: msgspec Structs made from the models (made on first use)
_FAST = FastDecoder(MESSAGE_TYPES.values(), specversion=SPECVERSION, content_type=CONTENT_TYPE)
_fast_decode = _FAST.decode
#: control events checked by a replay's reader process and rebuilt in the folding one
_HANDOVER = Handover(_FAST, CONTROL_EVENT_TYPES)

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
    if "principal" in flat:  # written only when set: events without one keep their bytes
        principal = flat.pop("principal")
        if principal is not None:
            envelope["principal"] = principal
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
    """The fast path: a valid message of its type's current schema version, as encoded.

    Returns None, never raises, whenever anything is off or unusual (old version, bad JSON,
    a missing or unknown attribute, a lax value, an integer id, a non-UTC offset, ...):
    :func:`decode` then runs the strict path, which raises the precise error (or accepts
    and normalises the unusual input). Our writers (:func:`encode`) produce none of those
    (``bench/decode.py`` counts the misses), so a replay rarely leaves this path.
    """
    if isinstance(raw, dict):
        return None  # a caller's dict must stay untouched; the strict path copies it
    return _fast_decode(raw)


def decode(raw: bytes | str | dict[str, Any]) -> Message:
    """Decode any streamplane message; raises an :class:`EventError` subclass on bad input."""
    message = _decode_current(raw)
    return _decode_checked(raw) if message is None else message


def _decode_checked(raw: bytes | str | dict[str, Any]) -> Message:
    """The strict path: check by check, raising the precise error (or upcasting)."""
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
    """A whole batch of control events through the fast path only, or None if any of
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


def decode_alert(raw: bytes | str | dict[str, Any]) -> AlertFired | AlertResolved:
    """Decode an alert (``streamplane.alerts``)."""
    message = decode(raw)
    if not isinstance(message, AlertFired | AlertResolved):
        raise WrongFamilyError(
            f"expected an alert, got {type(message).__name__}",
            type_=type(message).__name__,
            field="type",
        )
    return message
