"""The streamplane contract: every message type, the codec, schemas and upcasters.

Pure: imports no Kafka, Faust or database code.
"""

from events.base import Command, ControlEvent, Message
from events.codec import (
    MESSAGE_TYPES,
    decode,
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
