"""The pieces of ``telemetry.metrics`` the processes build their metrics from: metrics read at
scrape time (:class:`Derived`), state sets, the address setting, the endpoint's errors, and
the ASGI app a process with its own HTTP server mounts."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import generate_latest
from pydantic import BaseModel, ValidationError

from telemetry.metrics import (
    Derived,
    MetricsAddress,
    MetricsAddressError,
    MetricsServer,
    Spec,
    asgi_app,
    free_address,
    process_registry,
    state_set,
    topic_label,
)


class _Settings(BaseModel):
    metrics_address: MetricsAddress = ""


def test_derived_metrics_are_read_at_each_scrape() -> None:
    registry = process_registry()
    values: dict[str, Any] = {"t_jobs": 2, "t_things": {("red",): 1, ("blue",): 3}}
    reads = []

    def read() -> dict[str, Any]:
        reads.append(1)
        return values

    Derived(
        [
            Spec("t_jobs", "counter", "Jobs done.", ()),
            Spec("t_things", "gauge", "Things by colour.", ("colour",)),
            Spec("t_unknown", "gauge", "Not known yet."),
        ],
        read,
        registry,
    )
    assert reads == [], "registering describes, it does not read"
    assert registry.get_sample_value("t_jobs_total") == 2
    values["t_jobs"] = 5
    assert registry.get_sample_value("t_jobs_total") == 5
    assert registry.get_sample_value("t_things", {"colour": "blue"}) == 3
    text = generate_latest(registry).decode()
    assert "# TYPE t_unknown gauge" in text and "\nt_unknown " not in text


def test_a_state_set_marks_the_current_state() -> None:
    assert state_set("open", ("closed", "open")) == {("closed",): 0.0, ("open",): 1.0}
    assert state_set(None, ("closed",)) == {("closed",): 0.0}
    assert topic_label("sp.heartbeats", "sp") == "heartbeats"


def test_the_address_setting_is_checked_and_names_the_field() -> None:
    assert _Settings(metrics_address=" 127.0.0.1:9101 ").metrics_address == "127.0.0.1:9101"
    assert _Settings().metrics_address == ""
    with pytest.raises(ValidationError, match="metrics_address"):
        _Settings(metrics_address="localhost:http")


def test_an_address_in_use_is_one_clear_error() -> None:
    address = free_address()
    with MetricsServer(process_registry()) as first:
        first.start(address)
        with pytest.raises(MetricsAddressError, match="metrics_address: cannot listen on"):
            MetricsServer(process_registry()).start(address)


async def test_the_asgi_app_serves_the_registry() -> None:
    registry = process_registry()
    Derived([Spec("t_up", "gauge", "Up.")], lambda: {"t_up": 1}, registry)
    app = asgi_app(registry)
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/", "query_string": b"", "headers": []}
    await app(scope, receive, send)
    assert sent[0]["status"] == 200
    body = b"".join(m.get("body", b"") for m in sent[1:]).decode()
    assert "t_up 1.0" in body and "process_resident_memory_bytes" in body
