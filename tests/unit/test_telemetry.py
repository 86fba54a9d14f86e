"""telemetry: the metrics endpoint, the loop-lag gauge and the JSON log lines."""

from __future__ import annotations

import asyncio
import io
import logging
import time
import urllib.request

import orjson
import pytest

from telemetry.logs import configure
from telemetry.metrics import (
    LoopLag,
    MetricsAddressError,
    MetricsServer,
    parse_address,
    process_registry,
    serving,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9101", ("127.0.0.1", 9101)),
        (":9101", ("127.0.0.1", 9101)),
        ("9101", ("127.0.0.1", 9101)),
        ("0.0.0.0:0", ("0.0.0.0", 0)),
        ("[::1]:9101", ("::1", 9101)),
    ],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["host:port", "127.0.0.1:", "1:70000", "nine"])
def test_a_bad_address_names_the_setting(text: str) -> None:
    with pytest.raises(MetricsAddressError, match="metrics_address"):
        parse_address(text)


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return str(response.read().decode())


def test_the_endpoint_serves_the_process_and_the_registry_s_own_metrics() -> None:
    registry = process_registry()
    lag = LoopLag(registry)
    lag.sample(0.25)
    lag.sample(-1.0)  # a timer that fired early is no lag
    with MetricsServer(registry) as server:
        _, port = server.start("127.0.0.1:0")
        text = _scrape(port)
    assert "process_resident_memory_bytes" in text
    assert "streamplane_event_loop_lag_seconds 0.0" in text
    assert 'streamplane_event_loop_lag_histogram_seconds_bucket{le="0.25"} 2.0' in text


def test_two_registries_in_one_process_do_not_collide() -> None:
    a, b = process_registry(), process_registry()
    LoopLag(a).sample(1.0)
    LoopLag(b).sample(2.0)
    assert a.get_sample_value("streamplane_event_loop_lag_seconds") == 1.0
    assert b.get_sample_value("streamplane_event_loop_lag_seconds") == 2.0


def test_serving_without_an_address_serves_nothing() -> None:
    with serving(process_registry(), None) as server:
        assert server is None
    with serving(process_registry(), "127.0.0.1:0") as server:
        assert server is not None and server.address is not None
        assert "process_cpu_seconds_total" in _scrape(server.address[1])


async def test_loop_lag_measures_a_blocked_loop() -> None:
    registry = process_registry()
    lag = LoopLag(registry, interval=0.01)
    task = asyncio.create_task(lag.run())
    await asyncio.sleep(0.02)
    time.sleep(0.2)  # noqa: ASYNC251 - block the loop on purpose
    await asyncio.sleep(0.05)
    task.cancel()
    count = registry.get_sample_value("streamplane_event_loop_lag_histogram_seconds_count")
    over = registry.get_sample_value(
        "streamplane_event_loop_lag_histogram_seconds_bucket", {"le": "0.1"}
    )
    assert count is not None and over is not None and count > over  # one sample > 0.1 s


def test_json_lines_carry_the_event_coordinates_and_nothing_else() -> None:
    out = io.StringIO()
    configure("DEBUG", "json", stream=out)
    try:
        logging.getLogger("streamplane.test").info(
            "seq %d applied", 7, extra={"seq": 7, "event_id": "e-7", "epoch": 2, "token": "s3"}
        )
    finally:
        configure("WARNING", "text")
    line = orjson.loads(out.getvalue().splitlines()[-1])
    assert line["message"] == "seq 7 applied" and line["level"] == "INFO"
    assert (line["seq"], line["event_id"], line["epoch"]) == (7, "e-7", 2)
    assert line["logger"] == "streamplane.test" and line["time"].endswith("+00:00")
    assert "token" not in line  # extras outside the list are dropped


def test_an_unknown_log_format_names_the_setting() -> None:
    with pytest.raises(ValueError, match="log_format"):
        configure("INFO", "yaml")
