"""How a pydantic model maps to msgspec Structs, and the plan made of it for each message type.

For every message type a pair of ``msgspec.Struct`` classes is *generated* from the pydantic
model's fields (never written by hand): the CloudEvents envelope, tagged by ``type``, with the
model's envelope fields, and its ``data`` with the type's own fields, both with
``forbid_unknown_fields`` (so ``data`` repeating an envelope key fails, as in the strict path).
One ``msgspec.json.Decoder`` reads the union of all envelopes; a builder generated per type
then checks what msgspec cannot say natively and makes the pydantic model the way
pydantic-core does (a bare instance and its four slots), with no second validation.

Each field maps to a msgspec type that accepts a *subset* of what the model accepts, the
rest left to the strict path of :mod:`events.codec`; an annotation, constraint, validator or
setting with no exact mapping makes the type unsupported (:class:`Unsupported`: it then always
takes the strict path):

- ``int``: a JSON integer in the model's bounds and in 64 bits (orjson, which the strict path
  uses, reads longer integers as floats); strings, floats and booleans fail;
- ``float``: a JSON number, then finite (pydantic forbids inf and NaN here);
- ``str``: with the model's lengths (both count code points); a ``pattern`` only if
  :data:`PATTERN_CHECKS` knows it (a cheap predicate equal to the regex); ids' integer form
  (``_int_to_str``) fails;
- ``UtcDateTime``: a string of the RFC 3339 form (at most 6 fractional digits) read by
  ``datetime.fromisoformat``, then its tzinfo must be ``datetime.UTC`` (``Z``, ``±00:00``):
  msgspec's own datetime rounds a 7th digit where pydantic truncates it;
- ``IPvAnyAddress``: a string, then pydantic's own validator; ``Literal``, ``bool``, ``str``
  enums, ``X | None``, ``tuple[X, ...]``, ``dict[K, V]`` and nested models (their own Structs
  and builders) as they are.

Absent optional fields decode as ``msgspec.UNSET``: the builder leaves them out of
``model_fields_set`` and fills in the model's default (copied when unhashable, as pydantic does).
"""

from __future__ import annotations

import enum
import ipaddress
import math
import types
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Annotated, Any, Literal, NamedTuple, Union, cast, get_args, get_origin

import annotated_types as at
import msgspec
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    IPvAnyAddress,
    StringConstraints,
)

from events._fast.checks import INLINE_NAMES, PATTERN_CHECKS, ip, ip_text, utc_time
from events._fast.codegen import (
    Convert,
    Field,
    Leaf,
    builder,
    each,
    each_unpacked,
    mapping,
    mapping_unpacked,
    packer,
    pair,
    unpacker,
)
from events.base import ENVELOPE_FIELDS, Message, _aware_utc
from events.ids import _int_to_str

UNSET = msgspec.UNSET

#: envelope attributes the strict path requires whatever the model says
_ALWAYS_REQUIRED = frozenset({"id", "source", "time"})
#: envelope attributes that are no model field: a data field of that name is not mapped
_ATTRIBUTES = frozenset({"specversion", "type", "datacontenttype", "subject", "schemaversion"})
#: orjson reads integers beyond 64 bits as floats (the strict path's value then differs), and
#: msgspec's bounds must fit an int64: integers in 2**63 .. 2**64-1 take the strict path
_INT_MIN, _INT_MAX = -(2**63), 2**63 - 1
_CONFIG_KEYS = frozenset({"frozen", "extra", "strict", "allow_inf_nan", "title"})


class Unsupported(Exception):
    """What a model holds that the fast path cannot reproduce exactly (its type then always
    takes the strict path): raised while the plans are made, never while decoding."""


class Nested(NamedTuple):
    """What a nested model maps to: its Struct, checked build, packer and unpacker
    (:mod:`events._fast.codegen`)."""

    struct: Any
    build: Convert
    pack: Convert
    unpack: Callable[[int, dict[str, Any]], Any]


class Plan(NamedTuple):
    """What a message type maps to: its envelope Struct (tagged by ``type``) and the rest as
    for :class:`Nested`."""

    envelope: Any
    build: Convert
    pack: Convert
    unpack: Callable[[int, dict[str, Any]], Any]


class _Constraints:
    """A field's metadata, read into the few constraints that map exactly."""

    def __init__(self, metadata: Iterable[Any]) -> None:
        self.bounds: dict[str, Any] = {}
        self.pattern: str | None = None
        self.utc = False
        for item in metadata:
            self._read(item)

    def _read(self, item: Any) -> None:
        if isinstance(item, StringConstraints):
            extra = (item.strip_whitespace, item.to_upper, item.to_lower, item.strict)
            if any(extra) or item.ascii_only:
                raise Unsupported(f"string constraint {item}")
            for key in ("min_length", "max_length"):
                if getattr(item, key) is not None:
                    self.bounds[key] = getattr(item, key)
            if item.pattern is not None:
                if not isinstance(item.pattern, str):
                    raise Unsupported("compiled pattern")
                self.pattern = item.pattern
        elif isinstance(item, at.MinLen | at.MaxLen):
            key = "min_length" if isinstance(item, at.MinLen) else "max_length"
            self.bounds[key] = getattr(item, key)
        elif isinstance(item, at.Ge | at.Le | at.Gt | at.Lt):
            key = type(item).__name__.lower()
            self.bounds[key] = getattr(item, key)
        elif isinstance(item, BeforeValidator) and item.func is _int_to_str:
            pass  # the fast path takes ids as strings only: an integer id fails here
        elif isinstance(item, AfterValidator) and item.func is _aware_utc:
            self.utc = True
        else:
            raise Unsupported(f"metadata {item!r}")

    def only(self, *allowed: str) -> None:
        extra = set(self.bounds) - set(allowed)
        if extra or self.utc or (self.pattern is not None and "pattern" not in allowed):
            raise Unsupported(f"constraints {sorted(extra) or self.bounds} here")


def _meta(base: Any, bounds: dict[str, Any]) -> Any:
    return Annotated[base, msgspec.Meta(**bounds)] if bounds else base


class Mapper:
    """Maps annotations to msgspec types; nested models get their own Struct and builder."""

    def __init__(self) -> None:
        self.nested: dict[type[BaseModel], Nested] = {}

    def leaf(self, annotation: Any, metadata: Iterable[Any] = ()) -> Leaf:
        """The :class:`Leaf` of ``annotation`` with the field's ``metadata``."""
        metadata = list(metadata)
        if get_origin(annotation) is Annotated:
            base, *inner = get_args(annotation)
            return self.leaf(base, [*inner, *metadata])
        origin = get_origin(annotation)
        if origin in (Union, types.UnionType):
            return self._optional(annotation, metadata)
        rules = _Constraints(metadata)
        if origin is Literal:
            rules.only()
            return Leaf(annotation)
        if origin is tuple:
            return self._tuple(annotation, rules)
        if origin is dict:
            return self._dict(annotation, rules)
        if origin is not None:
            raise Unsupported(f"type {annotation!r}")
        return self._plain(annotation, rules)

    def _plain(self, annotation: Any, rules: _Constraints) -> Leaf:
        if annotation is bool:
            rules.only()
            return Leaf(bool)
        if annotation is int:
            rules.only("ge", "le", "gt", "lt")
            bounds = {"ge": _INT_MIN, "le": _INT_MAX, **rules.bounds}
            bounds["ge"], bounds["le"] = max(bounds["ge"], _INT_MIN), min(bounds["le"], _INT_MAX)
            return Leaf(_meta(int, bounds))
        if annotation is float:
            rules.only("ge", "le", "gt", "lt")
            # msgspec 0.22 refuses 1e400 and NaN tokens; checked in case a version does not
            return Leaf(_meta(float, rules.bounds), math.isfinite, inline="isfinite({v})")
        if annotation is str:
            return self._str(rules)
        if annotation is datetime and rules.utc:
            rules.utc = False
            rules.only()
            return Leaf(
                Annotated[str, msgspec.Meta(min_length=20, max_length=32)],
                convert=utc_time,  # msgpack's timestamp gives an aware UTC datetime again
            )
        if annotation is IPvAnyAddress:
            rules.only()
            return Leaf(str, convert=ip, pack=ip_text, unpack=ipaddress.ip_address)
        if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
            rules.only()
            if not all(isinstance(member.value, str) for member in annotation):
                raise Unsupported(f"enum {annotation.__name__} with non-str values")
            return Leaf(annotation, unpack=annotation._value2member_map_.__getitem__)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            rules.only()
            nested = self.model(annotation)
            return Leaf(
                nested.struct,
                convert=nested.build,
                pack=nested.pack,
                unpack=pair(nested.unpack),
            )
        raise Unsupported(f"type {annotation!r}")

    def _str(self, rules: _Constraints) -> Leaf:
        rules.only("min_length", "max_length", "pattern")
        if rules.pattern is None:
            return Leaf(_meta(str, rules.bounds))
        check = PATTERN_CHECKS.get(rules.pattern)
        if check is None:
            raise Unsupported(f"pattern {rules.pattern!r} has no registered check")
        bounds = {
            "min_length": max(rules.bounds.get("min_length", 0), check.min_length),
            "max_length": min(rules.bounds.get("max_length", check.max_length), check.max_length),
        }
        return Leaf(_meta(str, bounds), check.full, inline=check.inline)

    def _optional(self, annotation: Any, metadata: list[Any]) -> Leaf:
        """``X | None``: the field's constraints apply to ``X`` (as in pydantic)."""
        members = [a for a in get_args(annotation) if a is not type(None)]
        if len(members) != 1 or len(get_args(annotation)) != 2:
            raise Unsupported(f"union {annotation!r}")
        inner = self.leaf(members[0], metadata)
        if inner.nullable:
            raise Unsupported(f"nested optional {annotation!r}")
        return inner._replace(type=inner.type | None, nullable=True)

    def _tuple(self, annotation: Any, rules: _Constraints) -> Leaf:
        args = get_args(annotation)
        if len(args) != 2 or args[1] is not Ellipsis:
            raise Unsupported(f"fixed tuple {annotation!r}")
        rules.only("min_length", "max_length")
        item = self.leaf(args[0])
        return Leaf(
            _meta(tuple[item.type, ...], rules.bounds),  # type: ignore[name-defined]
            convert=each(item),
            pack=each(item, packing=True),
            unpack=each_unpacked(item),
        )

    def _dict(self, annotation: Any, rules: _Constraints) -> Leaf:
        key, value = (self.leaf(a) for a in get_args(annotation))
        rules.only("min_length", "max_length")
        if key.convert is not None or key.nullable:
            raise Unsupported(f"dict key {annotation!r}")
        plain = value.check is None and value.convert is None and key.check is None
        return Leaf(
            _meta(dict[key.type, value.type], rules.bounds),  # type: ignore[name-defined]
            convert=None if plain else mapping(key, value),
            pack=None if plain else mapping(key, value, packing=True),
            unpack=mapping_unpacked(key, value),
        )

    def model(self, cls: type[BaseModel]) -> Nested:
        """A nested model's Struct (its fields, no unknown one), builder and hand-over."""
        if cls not in self.nested:
            _check_model(cls)
            fields = [
                Field(
                    name, info, "e", self.leaf(info.annotation, info.metadata), info.is_required()
                )
                for name, info in cls.model_fields.items()
            ]
            self.nested[cls] = Nested(
                _struct(cls.__name__, fields),
                builder(cls, fields, INLINE_NAMES),
                packer(cls, fields, INLINE_NAMES),
                unpacker(cls, fields),
            )
        return self.nested[cls]


def _check_model(cls: type[BaseModel]) -> None:
    """Raises :class:`Unsupported` if building ``cls`` runs code a builder would skip."""
    _check_core_schema(cls)
    decorators = cls.__pydantic_decorators__
    if decorators.validators or decorators.field_validators or decorators.root_validators:
        raise Unsupported("has field validators")
    if decorators.model_validators or cls.__private_attributes__:
        raise Unsupported("has model validators or private attributes")
    config = cls.model_config
    if not config.keys() <= _CONFIG_KEYS or config.get("strict"):
        raise Unsupported(f"model_config {sorted(config)}")
    if config.get("extra") not in (None, "forbid", "ignore"):
        raise Unsupported(f"extra={config.get('extra')!r}")
    for name, info in cls.model_fields.items():
        if info.alias or info.validation_alias or info.discriminator:
            raise Unsupported(f"{name}: alias or discriminator")
        if info.validate_default or info.default_factory_takes_validated_data:
            raise Unsupported(f"{name}: default validated or made from other fields")


def _check_core_schema(cls: type[BaseModel]) -> None:
    """Raises :class:`Unsupported` if pydantic-core builds ``cls`` with Python code of its own
    (custom ``__init__``, ``model_post_init``, a root model, a model validator) or keeps extra
    fields: a builder that sets the four slots directly would skip or miss them."""
    schema: dict[str, Any] = cast(dict[str, Any], cls.__pydantic_core_schema__)
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


def _struct(name: str, fields: list[Field], extra: list[Any] = (), **options: Any) -> Any:  # type: ignore[assignment]
    """A Struct of ``fields`` (absent optional ones decode as UNSET), unknown fields refused."""
    spec: list[Any] = list(extra)
    for field in fields:
        assert field.leaf is not None
        if field.required:
            spec.append((field.name, field.leaf.type))
        else:
            spec.append((field.name, Union[field.leaf.type, msgspec.UnsetType], UNSET))  # noqa: UP007
    return msgspec.defstruct(
        name, spec, kw_only=True, forbid_unknown_fields=True, gc=False, **options
    )


def _message_plan(
    cls: type[Message], mapper: Mapper, *, specversion: str, content_type: str
) -> Plan:
    """The envelope Struct (tagged with the type's name), builder and hand-over of ``cls``."""
    _check_model(cls)
    fields = []
    for name, info in cls.model_fields.items():
        if name == "type":
            fields.append(Field(name, info, "", None))
            continue
        if name in _ATTRIBUTES or name == "data":
            raise Unsupported(f"{name}: a data field named like an envelope attribute")
        source = "e" if name in ENVELOPE_FIELDS else "d"
        required = info.is_required() or name in _ALWAYS_REQUIRED
        fields.append(
            Field(name, info, source, mapper.leaf(info.annotation, info.metadata), required)
        )
    if "type" not in cls.model_fields:
        raise Unsupported("no type field")
    version = cls.SCHEMA_VERSION
    data = _struct(f"{cls.__name__}Data", [f for f in fields if f.source == "d"])
    attributes: list[Any] = [
        ("specversion", Literal[specversion]),
        ("data", data),
        ("datacontenttype", Union[Literal[content_type], msgspec.UnsetType], UNSET),  # noqa: UP007
        ("subject", str | None | msgspec.UnsetType, UNSET),  # the strict path ignores it
        # absent means version 1; 1.0 and true are no JSON integers and fail
        ("schemaversion", Literal[version], *((UNSET,) if version == 1 else ())),
    ]
    envelope = _struct(
        f"{cls.__name__}Envelope",
        [f for f in fields if f.source == "e"],
        attributes,
        tag_field="type",
        tag=cls.__name__,
    )
    return Plan(
        envelope,
        builder(cls, fields, INLINE_NAMES),
        packer(cls, fields, INLINE_NAMES),
        unpacker(cls, fields),
    )
