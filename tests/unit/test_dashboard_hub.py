"""The dashboard's hub without Kafka: bounded queues per browser (a slow one is dropped,
the others go on), a snapshot and its queue in one step, and the page's files."""

from __future__ import annotations

import re
from importlib import resources

import httpx
import orjson
import pytest
from fastapi import FastAPI

from control_plane.api.dashboard import DashboardSettings, router
from control_plane.api.dashboard.hub import CLOSED, DROPPED, Hub, TooManyClientsError, frame
from control_plane.api.dashboard.routes import STATIC
from events.topics import Topics
from kafka_auth import KafkaAccess

NOWHERE = "127.0.0.1:9"  # nothing is read: these tests never start the readers


def _hub(**settings: int) -> Hub:
    return Hub(NOWHERE, Topics("t"), DashboardSettings(**settings))  # type: ignore[arg-type]


def _drain(queue: object) -> list[bytes]:
    out = []
    while not queue.empty():  # type: ignore[attr-defined]
        out.append(queue.get_nowait())  # type: ignore[attr-defined]
    return out


def test_a_slow_browser_is_dropped_and_the_others_get_everything() -> None:
    hub = _hub(client_queue=3)
    _, slow = hub.subscribe()
    _, fast = hub.subscribe()
    got: list[bytes] = []
    for i in range(5):
        hub.publish({"kind": "delta", "n": i})
        got += _drain(fast.queue)  # the fast page keeps up
    assert got == [frame({"kind": "delta", "n": i}) for i in range(5)]
    # the slow one held 3, the 4th did not fit: its queue now says only that it was dropped
    assert _drain(slow.queue) == [DROPPED] and slow.ended
    assert hub.clients == 1 and hub.dropped == 1
    hub.publish({"kind": "delta", "n": 5})
    assert slow.queue.empty(), "a dropped page gets nothing more"


def test_a_new_browser_gets_the_state_then_only_what_follows() -> None:
    hub = _hub()
    hub.publish({"kind": "delta", "n": 0})  # before anyone listened: in no queue
    snapshot, sub = hub.subscribe()
    assert snapshot["kind"] == "snapshot" and snapshot["seq"] == 0
    assert snapshot["connected"] is False  # the readers have not reached the log
    hub.publish({"kind": "delta", "n": 1})
    assert _drain(sub.queue) == [frame({"kind": "delta", "n": 1})]
    hub.unsubscribe(sub)
    hub.publish({"kind": "delta", "n": 2})
    assert sub.queue.empty()


def test_too_many_browsers_are_refused_and_closing_ends_every_stream() -> None:
    hub = _hub(max_clients=2)
    subs = [hub.subscribe()[1] for _ in range(2)]
    with pytest.raises(TooManyClientsError, match="2 dashboards"):
        hub.subscribe()
    hub.publish({"kind": "delta"})
    hub.close()
    for sub in subs:
        assert _drain(sub.queue) == [CLOSED]
    assert hub.clients == 0


def test_messages_are_server_sent_events_with_json() -> None:
    data = frame({"kind": "status", "connected": True})
    assert data.startswith(b"data: ") and data.endswith(b"\n\n")
    assert orjson.loads(data[len(b"data: ") : -2]) == {"kind": "status", "connected": True}


class _Where:
    kafka_access = KafkaAccess(NOWHERE)
    topic_prefix = "t"


async def test_the_page_and_its_files_are_served_and_nothing_else() -> None:
    app = FastAPI()
    app.include_router(router(_Where()))
    # ASGITransport runs no lifespan: the Kafka readers do not start
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
        page = await client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        linked = re.findall(r'(?:src|href)="/dashboard/static/([^"]+)"', page.text)
        assert sorted(linked) == sorted(STATIC)
        for name in linked:
            got = await client.get(f"/dashboard/static/{name}")
            assert got.status_code == 200 and got.content
        assert (await client.get("/dashboard/static/..%2Fhub.py")).status_code == 404
        missing = await client.get("/dashboard/static/hub.py")
        assert missing.status_code == 404 and "name" in missing.json()["detail"]
        snapshot = (await client.get("/dashboard/snapshot")).json()
        assert snapshot["kind"] == "snapshot" and snapshot["instances"] == {}


def test_no_third_party_code_and_no_outside_address_in_the_page() -> None:
    static = resources.files("control_plane.api.dashboard").joinpath("static")
    for name in ("index.html", *STATIC):
        text = static.joinpath(name).read_text()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), name


def test_a_bad_setting_of_the_server_is_one_error_line_naming_it(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from control_plane.api.dashboard.server import main

    assert main(["--port", "abc"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: api_port: Input should be a valid integer, unable to parse string as an "
        "integer (got 'abc')"
    ]
    monkeypatch.setenv("STREAMPLANE_DASHBOARD", '{"client_queue": 0}')
    assert main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: dashboard.client_queue:") and err.count("\n") == 1
