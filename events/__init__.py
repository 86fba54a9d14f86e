"""The streamplane contract: every message type, the codec, schemas and upcasters.

Pure: imports no Kafka, Faust or database code.
"""

from events import commands as _commands
from events import control as _control
from events.alerts import AlertFired, AlertResolved, AlertSeverity
from events.base import Command, ControlEvent, Message
from events.codec import (
    MESSAGE_TYPES,
    decode,
    decode_alert,
    decode_command,
    decode_desired,
    decode_event,
    decode_heartbeat,
    encode,
    to_wire,
)
from events.commands import *
from events.control import *
from events.errors import (
    EventError,
    MalformedMessageError,
    SchemaValidationError,
    UnknownTypeError,
    UnsupportedVersionError,
    WrongFamilyError,
)
from events.heartbeat import (
    DesiredSet,
    Heartbeat,
    PerformanceMetrics,
    StreamPerformance,
    StreamReport,
    StreamRunState,
)
from events.topics import Topics

__all__ = [
    *(t.__name__ for t in _control.CONTROL_EVENT_TYPES),
    *(t.__name__ for t in _commands.COMMAND_TYPES),
    "AlertFired",
    "AlertResolved",
    "AlertSeverity",
    "AnyCommand",
    "AnyControlEvent",
    "CONTROL_EVENT_TYPES",
    "COMMAND_TYPES",
    "Command",
    "ControlEvent",
    "DesiredSet",
    "EventError",
    "Heartbeat",
    "MESSAGE_TYPES",
    "MalformedMessageError",
    "Message",
    "PerformanceMetrics",
    "PlannedMove",
    "Reasons",
    "SchemaValidationError",
    "StreamPerformance",
    "StreamReport",
    "StreamRunState",
    "Topics",
    "UnknownTypeError",
    "UnsupportedVersionError",
    "WrongFamilyError",
    "decode",
    "decode_alert",
    "decode_command",
    "decode_desired",
    "decode_event",
    "decode_heartbeat",
    "encode",
    "to_wire",
]
