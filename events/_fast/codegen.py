"""The code :mod:`events._fast.mapping` generates per model: straight-line functions, no loops.

Three functions are made from one model's field list (:class:`Field`, each with its
:class:`Leaf`, the value's msgspec type and what finishes its check):

- :func:`builder`: the checked build. From the decoded Struct(s), run every check msgspec
  could not make natively, convert (timestamps, IP addresses, nested models) and make the
  pydantic model the way pydantic-core does (a bare instance and its four slots).
- :func:`packer`: the same checks and conversions, but the result is the model's *hand-over*
  form: a pair of a bit mask of the optional fields that were absent and the dict the
  model's ``__dict__`` will be (its own Python values, in field order, the ``type`` tag
  included). msgpack carries it to another process (a replay's reader,
  :mod:`events._fast.handover`), where msgspec decodes it untyped, straight into dicts.
- :func:`unpacker`: the model from its hand-over pair, with *no* check: whoever packed it
  checked it. That dict becomes the model's ``__dict__``; only the values msgpack cannot
  carry as they are get converted back (tuples, enums, IP addresses, nested models).

``build(e) == unpack(*decode(encode(pack(e))))`` for every Struct the build accepts, and
``pack`` refuses exactly what ``build`` refuses (both are generated from the same lines;
``tests/unit/test_handover.py`` holds them to it).

Why the model is made by setting BaseModel's four slots (``__dict__``,
``__pydantic_fields_set__``, ``__pydantic_extra__``, ``__pydantic_private__``) and not with
the public ``model_construct``: both give the same object (a bare instance and those four
slots is what pydantic-core's model validator makes too), but ``model_construct`` walks every
field in Python (aliases, defaults) and copies the values into a new dict. With it in the
builders and unpackers, ``bench/decode.py --events 200000`` (2026-12-02, medians of 3 runs)
gave 7.88 instead of 3.54 us/event for ``decode_event`` and 6.11 instead of 1.63 for
``unpack_events``, the folding process's share of a replay (the build step alone: 4.01
against 0.73). The price of the slots is a tie to the pinned pydantic (pyproject.toml), so
what is generated stays small (straight-line checks, then those four sets) and is tested
against every model: each message type's builder against the strict path
(``tests/unit/test_codec_msgspec.py``: one example of every type, generated messages,
mutation properties), each control event type's unpacker too (``test_handover.py``). A model
whose building runs code of its own (``__init__``, ``model_post_init``, validators, private
attributes, extra fields allowed) is refused by :func:`events._fast.mapping._check_model`:
its type takes the strict path.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import msgspec
from pydantic import BaseModel
from pydantic.fields import FieldInfo

Check = Callable[[Any], bool]
Convert = Callable[[Any], Any]
UNSET = msgspec.UNSET
_new = object.__new__
# BaseModel's four slots (see the module docstring for why they are set directly): set through
# their descriptors, as pydantic-core sets them, skipping object.__setattr__'s lookup
_SLOTS = BaseModel.__dict__
_set_dict = _SLOTS["__dict__"].__set__
_set_extra = _SLOTS["__pydantic_extra__"].__set__
_set_private = _SLOTS["__pydantic_private__"].__set__
_set_fields_set = _SLOTS["__pydantic_fields_set__"].__set__


class Reject(ValueError):
    """A value the fast path leaves to the strict path (never seen by callers)."""


class Leaf(NamedTuple):
    """A value's msgspec type and what finishes its check after decoding."""

    type: Any
    check: Check | None = None  # a predicate on the decoded value
    inline: str | None = None  # the same as an expression of ``{v}`` (generated code)
    convert: Convert | None = None  # makes the model's value (raises ValueError to reject)
    nullable: bool = False
    #: what ``convert`` becomes when packing (None: ``convert`` itself)
    pack: Convert | None = None
    #: makes the model's value from what msgpack gives back, unchecked (None: it is it)
    unpack: Convert | None = None

    def converter(self, packing: bool) -> Convert | None:
        return (self.pack or self.convert) if packing else self.convert


class Field(NamedTuple):
    name: str
    info: FieldInfo
    source: str  # "e": the envelope (or a nested model's own Struct), "d": data, "": the tag
    leaf: Leaf | None
    required: bool = True


def _true(_: Any) -> bool:
    return True


def finish(leaf: Leaf, *, packing: bool = False) -> Convert:
    """One function doing a leaf's check and conversion (containers' items)."""
    check, convert, nullable = leaf.check, leaf.converter(packing), leaf.nullable

    def done(value: Any) -> Any:
        if nullable and value is None:
            return None
        if check is not None and not check(value):
            raise Reject(repr(value))
        return value if convert is None else convert(value)

    return done


def each(item: Leaf, *, packing: bool = False) -> Convert | None:
    """A tuple's items checked and converted, or None when there is nothing to do."""
    if item.check is None and item.converter(packing) is None:
        return None
    done = finish(item, packing=packing)
    return lambda values: tuple(map(done, values))


def each_unpacked(item: Leaf) -> Convert:
    """A tuple again (msgpack gives a list), its items model values again."""
    unpack, nullable = item.unpack, item.nullable
    if unpack is None:
        return tuple
    if nullable:
        return lambda values: tuple(None if v is None else unpack(v) for v in values)
    return lambda values: tuple(map(unpack, values))


def mapping(key: Leaf, value: Leaf, *, packing: bool = False) -> Convert:
    """A dict's keys checked, its values checked and converted."""
    keys, values = key.check or _true, finish(value, packing=packing)

    def convert(items: dict[Any, Any]) -> dict[Any, Any]:
        if not all(map(keys, items)):
            raise Reject("dict key")
        return {k: values(v) for k, v in items.items()}

    return convert


def mapping_unpacked(key: Leaf, value: Leaf) -> Convert | None:
    """A dict's keys and values model values again, or None when they are."""
    keys, values = key.unpack or _same, value.unpack or _same
    if key.unpack is None and value.unpack is None:
        return None
    if value.nullable:
        return lambda items: {keys(k): None if v is None else values(v) for k, v in items.items()}
    return lambda items: {keys(k): values(v) for k, v in items.items()}


def _same(value: Any) -> Any:
    return value


def pair(unpack: Callable[[int, dict[str, Any]], Any]) -> Convert:
    """A nested model's unpacker as a converter of its hand-over pair."""
    return lambda value: unpack(value[0], value[1])


def _default(info: FieldInfo) -> tuple[Any, str]:
    """The default and how the code gets it: pydantic copies unhashable defaults."""
    if info.default_factory is not None:
        return info.default_factory, "{}()"
    try:
        hash(info.default)
    except TypeError:
        return info.default, "deepcopy({})"
    return info.default, "{}"


def _namespace(cls: type[BaseModel], names: dict[str, Any]) -> dict[str, Any]:
    return {
        "UNSET": UNSET,
        "Reject": Reject,
        "deepcopy": copy.deepcopy,
        "new": _new,
        "CLS": cls,
        "set_dict": _set_dict,
        "set_extra": _set_extra,
        "set_private": _set_private,
        "set_fields_set": _set_fields_set,
        **names,
    }


def _compile(source: str, ns: dict[str, Any], what: str) -> Callable[..., Any]:
    exec(compile(source, f"<fastgen {what}>", "exec"), ns)
    function: Callable[..., Any] = ns["generated"]
    function.__doc__ = source  # what was generated, for whoever debugs it
    return function


def _checked(
    fields: list[Field], ns: dict[str, Any], *, packing: bool
) -> tuple[list[str], list[str]]:
    """The lines checking and converting every field of the decoded Struct ``e`` (its
    ``data`` in ``d``), and the expression of each field's value. Absent optional fields
    get their default and are dropped from ``g`` (the fields set) or, when packing, set
    their bit in ``u``."""
    lines = []
    if any(f.source == "d" for f in fields):
        lines.append("    d = e.data")
    # encode writes every field, so all are usually given: start from all, drop the absent
    lines.append("    u = 0" if packing else f"    g = {_set_display(fields)}")
    values = []
    for i, field in enumerate(fields):
        if field.leaf is None:  # the tag: always given, the model's literal value
            ns[f"K{i}"] = field.info.default
            values.append(f"K{i}")
            continue
        var, leaf, src = f"v{i}", field.leaf, f"{field.source}.{field.name}"
        done = _finish_lines(i, var, leaf, ns, packing=packing)
        if field.required and not done:
            values.append(src)
            continue
        lines.append(f"    {var} = {src}")
        if field.required:
            lines += [f"    {line}" for line in done]
        else:
            ns[f"D{i}"], how = _default(field.info)
            lines += [f"    if {var} is UNSET:", f"        {var} = {how.format(f'D{i}')}"]
            absent = f"u |= {1 << i}" if packing else f"g.discard({field.name!r})"
            lines.append(f"        {absent}")
            if done:
                lines += ["    else:", *(f"        {line}" for line in done)]
        values.append(var)
    return lines, values


def _set_display(fields: Iterable[Field]) -> str:
    return f"{{{', '.join(repr(f.name) for f in fields)}}}"


def _finish_lines(i: int, var: str, leaf: Leaf, ns: dict[str, Any], *, packing: bool) -> list[str]:
    """The statements checking and converting a decoded value ``var`` (not UNSET)."""
    guard = f"{var} is not None and " if leaf.nullable else ""
    lines = []
    if leaf.check is not None:
        ns[f"C{i}"] = leaf.check
        test = f"C{i}({var})" if leaf.inline is None else leaf.inline.format(v=var)
        lines.append(f"if {guard}not ({test}): raise Reject({var!r})")
    convert = leaf.converter(packing)
    if convert is not None:
        ns[f"F{i}"] = convert
        line = f"{var} = F{i}({var})"
        lines.append(f"if {var} is not None: {line}" if guard else line)
    return lines


def _model_lines(fields: list[Field], values: list[str], fields_set: str) -> list[str]:
    pairs = ", ".join(f"{f.name!r}: {v}" for f, v in zip(fields, values, strict=True))
    return [
        "    m = new(CLS)",
        f"    set_dict(m, {{{pairs}}})",
        "    set_extra(m, None)",
        "    set_private(m, None)",
        f"    set_fields_set(m, {fields_set})",
        "    return m",
    ]


def builder(cls: type[BaseModel], fields: list[Field], names: dict[str, Any]) -> Convert:
    """Checks the decoded Struct(s) and makes ``cls`` (``names``: what inline checks use)."""
    ns = _namespace(cls, names)
    lines, values = _checked(fields, ns, packing=False)
    source = "\n".join(["def generated(e):", *lines, *_model_lines(fields, values, "g")])
    return _compile(source, ns, cls.__name__)


def packer(cls: type[BaseModel], fields: list[Field], names: dict[str, Any]) -> Convert:
    """Checks the decoded Struct(s) as :func:`builder` does; makes the hand-over pair."""
    ns = _namespace(cls, names)
    lines, values = _checked(fields, ns, packing=True)
    pairs = ", ".join(f"{f.name!r}: {v}" for f, v in zip(fields, values, strict=True))
    source = "\n".join(["def generated(e):", *lines, f"    return (u, {{{pairs}}})"])
    return _compile(source, ns, f"{cls.__name__} packer")


def unpacker(cls: type[BaseModel], fields: list[Field]) -> Callable[[int, dict[str, Any]], Any]:
    """``cls`` from its hand-over pair: ``u`` the absent fields' bits, ``d`` the values as
    msgpack gave them back (becomes the model's ``__dict__``). Trusted: no check runs."""
    ns = _namespace(cls, {})
    lines = []
    for i, field in enumerate(fields):
        leaf = field.leaf
        if leaf is not None and leaf.unpack is not None:
            ns[f"U{i}"] = leaf.unpack
            key = repr(field.name)
            if leaf.nullable:
                lines += [f"    v = d[{key}]", f"    if v is not None: d[{key}] = U{i}(v)"]
            else:
                lines.append(f"    d[{key}] = U{i}(d[{key}])")
    bits = [(1 << i, f.name) for i, f in enumerate(fields)]
    ns["present"] = lambda u: {name for bit, name in bits if not u & bit}
    source = "\n".join(
        [
            "def generated(u, d):",
            *lines,
            "    m = new(CLS)",
            "    set_dict(m, d)",
            "    set_extra(m, None)",
            "    set_private(m, None)",
            f"    set_fields_set(m, present(u) if u else {_set_display(fields)})",
            "    return m",
        ]
    )
    unpack: Callable[[int, dict[str, Any]], Any] = _compile(source, ns, f"{cls.__name__} unpacker")
    return unpack
