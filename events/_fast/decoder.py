"""msgspec decoders: the fast path of :func:`events.codec.decode`, made from the models.

For every message type a pair of ``msgspec.Struct`` classes is *generated* from the pydantic
model's fields (:mod:`events._fast.mapping`, which says how each kind of field maps); one
``msgspec.json.Decoder`` reads the union of all envelopes, and a builder generated per type
(:mod:`events._fast.codegen`) runs the checks msgspec cannot make natively
(:mod:`events._fast.checks`) and makes the pydantic model the way pydantic-core does, with no
second validation.

What it refuses (None) the strict path of :mod:`events.codec` decodes, or rejects with the
precise error; whatever it accepts is the very object the strict path would give.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any, Union

import msgspec

from events._fast.codegen import Convert
from events._fast.mapping import Mapper, Plan, Unsupported, _message_plan
from events.base import Message


class FastDecoder:
    """Decodes JSON bytes or text of the given types at their current version with msgspec.

    :meth:`decode` returns None, never raises, for anything else or anything unusual (the
    strict path then runs). The Structs and builders are made once, on the first message.
    """

    def __init__(
        self, types: Iterable[type[Message]], *, specversion: str, content_type: str
    ) -> None:
        self._types = {cls.__name__: cls for cls in types}
        self._specversion = specversion
        self._content_type = content_type
        self._decoder: msgspec.json.Decoder[Any] | None = None
        self._builds: dict[Any, Convert] = {}  # envelope Struct -> its builder
        self._plans: dict[type[Message], Plan] = {}
        self._unsupported: dict[str, str] = {}
        self._lock = threading.Lock()

    def unsupported(self) -> dict[str, str]:
        """Type name -> why msgspec cannot decode it (those always take the strict path)."""
        self._ready()
        return dict(self._unsupported)

    def build(self, envelope: Any) -> Message:
        """The message from a decoded envelope Struct; raises ValueError where ``decode``
        gives None (for tests: a Struct can be given values JSON cannot carry)."""
        self._ready()
        message: Message = self._builds[type(envelope)](envelope)
        return message

    def envelope_types(self) -> dict[str, Any]:
        """Type name -> its generated envelope Struct."""
        self._ready()
        return {struct.__struct_config__.tag: struct for struct in self._builds}

    def plans(self) -> dict[type[Message], Plan]:
        """Each type msgspec can decode -> its :class:`Plan` (for :mod:`events._fast.handover`)."""
        self._ready()
        return dict(self._plans)

    def decode(self, raw: bytes | str) -> Message | None:
        """The message in ``raw`` if it is a valid current-version one msgspec can read."""
        decoder = self._decoder or self._ready()
        try:
            envelope = decoder.decode(raw)
        except (msgspec.MsgspecError, ValueError, RecursionError):  # ValueError: bad UTF-8
            return None
        try:
            message: Message = self._builds[type(envelope)](envelope)
        except ValueError:  # Reject, fromisoformat's, pydantic's (IP addresses)
            return None
        return message

    def _ready(self) -> msgspec.json.Decoder[Any]:
        with self._lock:
            if self._decoder is None:
                mapper = Mapper()
                for name, cls in self._types.items():
                    try:
                        plan = _message_plan(
                            cls,
                            mapper,
                            specversion=self._specversion,
                            content_type=self._content_type,
                        )
                    except Unsupported as exc:
                        self._unsupported[name] = str(exc)
                        continue
                    self._builds[plan.envelope] = plan.build
                    self._plans[cls] = plan
                union = Union[tuple(self._builds)] if self._builds else msgspec.UnsetType  # noqa: UP007
                self._decoder = msgspec.json.Decoder(union)
            return self._decoder
