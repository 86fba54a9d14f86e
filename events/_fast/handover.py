"""Decode in one process, fold in another: checked events handed over as msgpack.

A long replay runs in two processes (:mod:`projections.io.prefetch`): the reader fetches the
log, the parent folds it. Decoding a record is about as costly as folding it, so the reader
also does the checking part of the decode, and the parent only rebuilds the models:

- :meth:`Handover.pack` (the reader): a chunk of raw JSON records through the msgspec path of
  :mod:`events._fast.decoder`, every check included, into each model's *hand-over* pair (the bits
  of its absent optional fields, and the dict its ``__dict__`` will be: its own Python values
  in field order), all encoded with msgpack in one call. None if any record needs more than
  that path (unusual or bad records): the chunk then goes over raw and the parent decodes it
  with :func:`events.codec.decode_event`, precise errors and dead letters included.
- :meth:`Handover.unpack` (the parent): msgspec decodes the blob untyped, straight into
  those dicts, and each becomes its model's ``__dict__`` (:func:`events._fast.codegen.unpacker`):
  the very models the decode gives, without checking again. Only for blobs :meth:`pack`
  made (our own reader over our own pipe, as the pickles :mod:`projections.io.prefetch`
  already trusts): a blob from anywhere else could make models no validator saw.

Why msgpack through msgspec rather than pickle: pickling pydantic models costs more than
decoding the JSON again (measured in docs/benchmarks.md); msgspec writes and reads msgpack in
C, and its msgpack timestamps come back as the same aware UTC datetimes. Why untyped dicts
rather than typed Structs: a dict msgspec made *is* the model's ``__dict__``, where a Struct
would be copied into one field by field (~0.6 us an event more in the folding process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Union

import msgspec

from events._fast.codegen import Convert
from events._fast.decoder import FastDecoder
from events.base import Message


class Handover:
    """Packs chunks of raw records of ``types`` checked; unpacks them to their models."""

    def __init__(self, fast: FastDecoder, types: Iterable[type[Message]]) -> None:
        self._fast = fast
        self._types = tuple(types)
        self._packs: dict[Any, Convert] = {}  # envelope Struct -> its packer
        self._unpacks: dict[str, Callable[[int, dict[str, Any]], Message]] = {}  # by type
        self._decode = msgspec.msgpack.Decoder().decode
        self._json: msgspec.json.Decoder[Any] | None = None
        self._encode = msgspec.msgpack.Encoder().encode
        self._lock = threading.Lock()

    def pack(self, raws: Sequence[bytes | str]) -> bytes | None:
        """``raws`` checked and packed into one blob, or None if any of them is not a valid
        current-version record of the types that the msgspec path decodes."""
        decode = (self._json or self._ready()).decode
        packs = self._packs
        try:
            hands = []
            for raw in raws:
                envelope = decode(raw)
                hands.append(packs[type(envelope)](envelope))
        except (msgspec.MsgspecError, ValueError, RecursionError, KeyError):
            # ValueError: bad UTF-8, Reject, fromisoformat's, pydantic's (IP addresses);
            # KeyError: a type that is not one of ours (another family's message)
            return None
        return self._encode(hands)

    def unpack(self, blob: bytes) -> list[Message]:
        """The models :meth:`pack` checked, in order (trusted: see the module's docstring)."""
        if self._json is None:
            self._ready()
        unpacks = self._unpacks
        return [unpacks[d["type"]](u, d) for u, d in self._decode(blob)]

    def _ready(self) -> msgspec.json.Decoder[Any]:
        with self._lock:
            if self._json is None:
                plans = self._fast.plans()
                for cls in self._types:
                    plan = plans.get(cls)
                    if plan is not None:
                        self._packs[plan.envelope] = plan.pack
                        self._unpacks[cls.__name__] = plan.unpack
                envelopes = Union[tuple(self._packs)] if self._packs else msgspec.UnsetType  # noqa: UP007
                self._json = msgspec.json.Decoder(envelopes)
            return self._json
