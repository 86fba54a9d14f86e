"""Wire validators: the fast path of :func:`events.codec.decode`, one native call per message.

For each message type a *wire schema* is made once, on its first message, from the flat
model's own core schema (so the constraints are the model's, not a second copy): the
model's fields, read from the parsed CloudEvents object as they sit on the wire (envelope
attributes at the top, the type's own fields in ``data`` through alias paths), with the
model's own defaults. pydantic-core validates the parsed object in one call and gives the
field values in the model's order and the set of fields given; :class:`WirePlan` then makes
the model from them without a second validation. What the model's fields cannot say about
the envelope (no unknown attribute, ``specversion``, ``datacontenttype``, the current
``schemaversion`` as a JSON integer, ``data`` an object with none but the type's fields) is
checked in a few dict operations before.

The values validated are the very ones the full path validates (orjson parses both), so each
field schema may stay the model's own. Two Python validators cost a call per value and are
replaced by native schemas that accept a *subset* of what they accept, the rest of their
work done afterwards; other validators stay (they run on the same values as in the full
path), and what could make a result differ (a validator reading other fields, a model
validator, ``model_post_init``, extra fields allowed, aliases) makes the type unsupported
(always the full path), never a dropped check:

- ``_int_to_str`` (ids, also inside tuples and dicts) -> its inner constrained ``str``:
  an integer id fails here, and the full path turns it into ``"42"``;
- ``_aware_utc`` (top-level datetimes) -> a ``str`` in RFC 3339 form at UTC (``Z`` or
  ``+00:00``, fields in range, at most 6 fractional digits), then ``datetime.fromisoformat``,
  which gives the instant the full path gives, with ``datetime.UTC`` as its tzinfo (on that
  form it and pydantic-core's parser agree, impossible days such as Feb 30 failing in both).

Why orjson + ``validate_python`` and not ``validate_json``: with these checks in place, a
``validate_json`` wire validator (pydantic-core's JSON parser is about 1.7x slower than
orjson here, unknown-key checks on the raw object cost more, and the model is then built in
Python) measured slower on the replay benchmark's mix than this design.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, cast

from pydantic import BaseModel
from pydantic_core import CoreSchema, SchemaValidator, ValidationError
from pydantic_core import core_schema as cs

from events.base import ENVELOPE_FIELDS, Message, _aware_utc
from events.ids import _int_to_str

Schema = dict[str, Any]
Convert = Callable[[Any], Any]
#: RFC 3339 at UTC, fields in range; fromisoformat then rejects impossible days (Feb 30)
UTC_PATTERN = (
    r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?(Z|\+00:00)$"
)
#: envelope attributes the full path requires whatever the model says
_ALWAYS_REQUIRED = frozenset({"id", "source", "time"})
#: envelope attributes that are no model field (``type`` is read by the model)
_ATTRIBUTES = frozenset({"specversion", "type", "datacontenttype", "subject", "schemaversion"})
_DATETIME = {"type": "datetime", "microseconds_precision": "truncate"}
_new = object.__new__
# BaseModel's slot descriptors: setting through them skips object.__setattr__'s lookup
_SLOTS = BaseModel.__dict__
_set_dict = _SLOTS["__dict__"].__set__
_set_extra = _SLOTS["__pydantic_extra__"].__set__
_set_private = _SLOTS["__pydantic_private__"].__set__
_set_fields_set = _SLOTS["__pydantic_fields_set__"].__set__


class Unsupported(Exception):
    """The type's core schema holds something a wire schema cannot reproduce exactly."""


class _Rewrite:
    """Replaces the two known Python validators in a top-level field's core schema."""

    def __init__(self) -> None:
        #: (field, what finishes a replaced validator's work on the validated value)
        self.after: list[tuple[str, Convert]] = []

    def field(self, name: str, schema: Schema) -> Schema:
        """A top-level field's schema (``default`` and ``nullable`` wrappers kept)."""
        kind = schema["type"]
        if kind in ("default", "nullable"):
            return {**schema, "schema": self.field(name, schema["schema"])}
        if kind == "function-after" and _function(schema) is _aware_utc:
            if schema["schema"] != _DATETIME:  # constrained: keep the validator as it is
                return schema
            self.after.append((name, datetime.fromisoformat))
            return {"type": "str", "pattern": UTC_PATTERN}
        return self.inner(name, schema)

    def inner(self, name: str, schema: Schema) -> Schema:
        """Ids without ``_int_to_str``, in containers too; anything else as it is."""
        kind = schema["type"]
        if kind == "function-before" and _function(schema) is _int_to_str:
            return self.inner(name, schema["schema"])
        if kind.startswith("function-"):
            if schema["function"]["type"] != "no-info":  # would see rewritten earlier fields
                raise Unsupported(f"{name}: a validator reading other fields")
            return schema  # the model's own, run on the value the full path gives it
        if kind in ("nullable", "default"):
            return {**schema, "schema": self.inner(name, schema["schema"])}
        if kind in ("list", "set", "frozenset") and "items_schema" in schema:
            return {**schema, "items_schema": self.inner(name, schema["items_schema"])}
        if kind == "tuple":
            items = [self.inner(name, s) for s in schema["items_schema"]]
            return {**schema, "items_schema": items}
        if kind == "dict":
            parts = ("keys_schema", "values_schema")
            return {**schema, **{p: self.inner(name, schema[p]) for p in parts if p in schema}}
        return schema  # native, or a nested model: built by its own complete validator


def _function(schema: Schema) -> Any:
    function = schema["function"]
    return function["function"] if function["type"] == "no-info" else None


def _model(cls: type[Message]) -> tuple[Schema, list[Schema]]:
    """The flat model's core schema and its definitions (when it has some)."""
    schema: Schema = cast(Schema, cls.__pydantic_core_schema__)
    definitions: list[Schema] = []
    if schema["type"] == "definitions":
        definitions = schema["definitions"]
        schema = schema["schema"]
        if schema["type"] == "definition-ref":
            ref = schema["schema_ref"]
            schema = next(d for d in definitions if d.get("ref") == ref)
    if schema["type"] != "model" or schema["cls"] is not cls:
        raise Unsupported("not a plain model schema")
    if schema.get("custom_init") or schema.get("post_init") or schema.get("root_model"):
        raise Unsupported("runs Python code when built")
    if schema["schema"]["type"] != "model-fields":
        raise Unsupported("has a model validator")
    if schema.get("config", {}).get("extra_fields_behavior") == "allow":
        raise Unsupported("allows extra fields")  # model_validate would set {} as the extra
    return schema, definitions


class WirePlan:
    """One type's wire validator and how to make the message from what it gives."""

    def __init__(self, cls: type[Message], *, specversion: str, content_type: str) -> None:
        """Raises :class:`Unsupported` when ``cls`` cannot have one."""
        model, definitions = _model(cls)
        rewrite = _Rewrite()
        fields: dict[str, Any] = {}
        envelope: set[str] = set()
        for name, field in model["schema"]["fields"].items():
            if "validation_alias" in field:
                raise Unsupported(f"{name} has a validation alias")
            schema = rewrite.field(name, field["schema"])
            if name in _ALWAYS_REQUIRED and schema["type"] == "default":
                schema = schema["schema"]  # the full path requires it on the wire
            if name == "type" or name in ENVELOPE_FIELDS:
                envelope.add(name)
                fields[name] = {**field, "schema": schema}
            else:
                fields[name] = {**field, "schema": schema, "validation_alias": [["data", name]]}
        config = {**model.get("config", {}), "extra_fields_behavior": "ignore"}
        root: CoreSchema = cs.model_fields_schema(fields, extra_behavior="ignore")
        if definitions:
            root = cs.definitions_schema(root, cast(list[CoreSchema], definitions))
        self.validate = SchemaValidator(root, cast(Any, config)).validate_python
        self.cls = cls
        self.after = tuple(rewrite.after)
        self.top_keys = _ATTRIBUTES | {"data"} | (envelope - {"type"})
        self.data_keys = frozenset(fields) - envelope
        self.specversion = specversion
        self.content_type = content_type
        self.version = cls.SCHEMA_VERSION

    def decode(self, obj: dict[str, Any]) -> Message | None:
        """The message in the parsed wire object ``obj``, or None (see the module docstring)."""
        data = obj.get("data")
        if (
            type(data) is not dict
            or not obj.keys() <= self.top_keys
            or not data.keys() <= self.data_keys  # also: no envelope attribute repeated
            or obj.get("specversion") != self.specversion
            or obj.get("datacontenttype", self.content_type) != self.content_type
        ):
            return None
        version = obj.get("schemaversion", 1)  # absent means 1; 1.0 and true are no ints
        if type(version) is not int or version != self.version:
            return None
        try:
            values, _, given = self.validate(obj)
        except ValidationError:
            return None
        for name, convert in self.after:
            value = values[name]
            if value is not None:
                try:
                    values[name] = convert(value)
                except ValueError:
                    return None
        # What pydantic-core's model validator (and BaseModel.model_construct) does with valid
        # values: a bare instance and its four slots. The model's validator cannot be used
        # for it: it would validate again, and from the flat form.
        message = _new(self.cls)
        _set_dict(message, values)
        _set_extra(message, None)
        _set_private(message, None)
        _set_fields_set(message, given)
        return message


class WireDecoder:
    """Decodes a parsed message of the given types at their current version, natively.

    :meth:`decode` returns None, never raises, for anything else (the full path then runs).
    Each type's :class:`WirePlan` is made on its first message.
    """

    def __init__(
        self, types: Iterable[type[Message]], *, specversion: str, content_type: str
    ) -> None:
        self._types = {cls.__name__: cls for cls in types}
        self._specversion = specversion
        self._content_type = content_type
        self._plans: dict[str, WirePlan] = {}
        self._unsupported: dict[str, str] = {}
        self._lock = threading.Lock()

    def unsupported(self) -> dict[str, str]:
        """Type name -> why it has no wire schema (those always take the full path)."""
        for name in self._types:
            self._plan(name)
        return dict(self._unsupported)

    def decode(self, obj: Any) -> Message | None:
        """The message in ``obj`` (parsed JSON) if it is a valid current-version one."""
        if type(obj) is not dict:
            return None
        name = obj.get("type")
        if type(name) is not str:
            return None
        plan = self._plans.get(name) or self._plan(name)
        return None if plan is None else plan.decode(obj)

    def _plan(self, name: str) -> WirePlan | None:
        with self._lock:
            cls = self._types.get(name)
            if cls is None or name in self._unsupported:
                return None
            if name not in self._plans:
                try:
                    self._plans[name] = WirePlan(
                        cls, specversion=self._specversion, content_type=self._content_type
                    )
                except Unsupported as exc:
                    self._unsupported[name] = str(exc)
                    return None
            return self._plans[name]
