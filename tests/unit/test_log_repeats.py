"""aiokafka logs every reconnect attempt (ten lines a second per connection while a broker is
away): a process's log shows each such message once per window, then how many it held back;
every other logger's lines pass untouched, and DEBUG shows everything."""

from __future__ import annotations

import io
import logging

from telemetry.logs import RepeatFilter, configure

TEMPLATE = "Unable connect to node with id %s: %s"


def _record(name: str, at: float, *args: object, msg: str = TEMPLATE) -> logging.LogRecord:
    record = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)
    record.created = at
    return record


def test_a_repeated_message_shows_once_per_window_then_says_how_many_were_held() -> None:
    thin = RepeatFilter(("aiokafka",), window=10)
    shown = [
        r.getMessage()
        for i in range(250)  # 25 s at ten a second
        if thin.filter(r := _record("aiokafka.conn", 1000 + i / 10, 1, f"refused {i}"))
    ]
    assert shown == [
        "Unable connect to node with id 1: refused 0",
        "Unable connect to node with id 1: refused 100 (99 more like it in 10 s not shown)",
        "Unable connect to node with id 1: refused 200 (99 more like it in 10 s not shown)",
    ]
    # another message of the same logger, and other loggers, are their own
    assert thin.filter(_record("aiokafka.conn", 1024.9, msg="Unable to update metadata"))
    assert all(thin.filter(_record("streamplane.worker", 1000 + i / 10)) for i in range(50))


def test_the_process_log_thins_aiokafka_unless_at_debug() -> None:
    root = logging.getLogger()
    handlers, level_before = list(root.handlers), root.level
    try:
        for level, expected in (("INFO", 1), ("DEBUG", 30)):
            out = io.StringIO()
            configure(level, stream=out)
            for i in range(30):
                logging.getLogger("aiokafka.client").error(TEMPLATE, 1, i)
            logging.getLogger("streamplane.worker").warning("heartbeat not sent")
            lines = out.getvalue().splitlines()
            assert sum("Unable connect" in line for line in lines) == expected, level
            assert sum("heartbeat not sent" in line for line in lines) == 1
    finally:
        root.handlers[:] = handlers
        root.setLevel(level_before)
