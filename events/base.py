"""Base classes for every message.

In memory a message is one flat, frozen pydantic model: the CloudEvents attributes
(``id``, ``source``, ``time``, ``seq``, ...) beside the type's own fields. On the wire the
codec splits it into a CloudEvents 1.0 envelope and its ``data`` (see :mod:`events.codec`).
Ids and timestamps are always given by the caller (the command function), never made here,
so that folding and deciding stay deterministic.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from events.ids import EventId, Principal


def _aware_utc(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("timestamp must carry a timezone (UTC expected)")
    return value.astimezone(UTC)


UtcDateTime = Annotated[datetime, AfterValidator(_aware_utc)]

SOURCE_MAX = 256


class Message(BaseModel):
    """Fields every message carries (the CloudEvents attributes bar ``type``/``data``)."""

    # allow_inf_nan=False: JSON has no NaN or infinity (orjson would write null, undecodable).
    model_config = ConfigDict(frozen=True, extra="forbid", strict=False, allow_inf_nan=False)

    #: the schema version this build writes for the type; bumped with an upcaster.
    SCHEMA_VERSION: ClassVar[int] = 1
    #: which topic family the type belongs to: "event", "command", "heartbeat", "desired".
    FAMILY: ClassVar[str] = ""
    #: the field that names the entity the message is about (CloudEvents ``subject``).
    SUBJECT_FIELD: ClassVar[str | None] = None

    id: EventId
    source: str = Field(min_length=1, max_length=SOURCE_MAX)
    time: UtcDateTime
    causationid: EventId | None = None
    correlationid: EventId | None = None

    @property
    def subject(self) -> str | None:
        name = self.SUBJECT_FIELD
        if name is None:
            return None
        value = getattr(self, name, None)
        return None if value is None else str(value)


class ControlEvent(Message):
    """A fact on the control log, written only by the active orchestrator.

    ``seq`` is gapless (previous + 1) and ``epoch`` is the leader term that wrote it.
    """

    FAMILY: ClassVar[str] = "event"

    seq: int = Field(ge=1)
    epoch: int = Field(ge=0)
    #: who issued the command this event was decided on (with ``causationid``); None for
    #: the orchestrator's own decisions. On the wire only when set.
    principal: Principal | None = None


class Command(Message):
    """An operator's request; ``command_id`` makes resending it harmless."""

    FAMILY: ClassVar[str] = "command"

    command_id: EventId
    #: who issued it (an API token's name, the CLI's OS user); on the wire only when set
    principal: Principal | None = None


ENVELOPE_FIELDS: frozenset[str] = frozenset(
    {"id", "source", "time", "causationid", "correlationid", "seq", "epoch", "principal"}
)
