"""The API's bearer tokens against a real control plane (a real orchestrator and worker,
a real read model in PostgreSQL, the app in-process): 401 without a token or with an
unknown or revoked one, 403 with too small a scope (a write with a ``read`` token never
reaches the orchestrator), the dashboard's data behind ``read`` (header or cookie), anonymous
reads when turned on, and the token's name recorded as the principal of the command and of
the events it caused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from support.api import ERROR_KEYS, ApiClient, running_api
from support.cluster import Cluster, open_cluster

from control_plane.api import ApiSettings
from control_plane.api.tokens import Scope, create, revoke
from events.base import Command
from events.codec import decode_command
from events.topics import Topics
from projections.io.kafka import make_consumer, started

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _refused(
    api: ApiClient, method: str, path: str, status: int, **kwargs: Any
) -> httpx.Response:
    response = await api.http.request(method, path, **kwargs)
    assert response.status_code == status, f"{method} {path}: {response.text}"
    body = response.json()
    assert set(body) <= ERROR_KEYS and {"error", "message"} <= set(body), body
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="streamplane"')
    return response


@pytest.fixture
async def secured(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_url: str,
    pg_schema: str,
    tmp_path: Path,
) -> AsyncIterator[tuple[Cluster, ApiSettings, dict[str, str]]]:
    """A cluster, the API's settings with a token file, and a token per scope."""
    tokens_file = tmp_path / "api-tokens.json"
    tokens = {s.name: create(tokens_file, name=f"t-{s.name}", scope=s) for s in Scope}
    settings = ApiSettings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=topic_prefix,
        database_url=database_url,
        database_schema=pg_schema,
        api_command_wait=30.0,
        api_tokens_file=tokens_file,
    )
    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path) as c:
        c.start_orchestrator("o1")
        c.start_worker("w1", max_streams=10)
        await c.wait_until(lambda: "w1" in c.fold().instances or "w1 unknown", 45, "w1 joins")
        yield c, settings, tokens


async def _ready(api: ApiClient, seq: int, headers: dict[str, str]) -> None:
    """Wait until the read model has its tables and is at ``seq`` or later."""
    async with asyncio.timeout(30):
        while True:
            response = await api.http.get("/health", headers=headers)
            assert response.status_code in (200, 503), response.text  # 503: no tables yet
            if response.status_code == 200 and response.json()["as_of_seq"] >= seq:
                return
            await asyncio.sleep(0.1)


async def _commands(bootstrap: str, topics: Topics) -> list[Command]:
    """Every command on the commands topic (what the API sent, as the orchestrator read it)."""
    consumer = make_consumer(bootstrap, auto_offset_reset="earliest")
    async with started(consumer, what="commands reader"):
        tp = TopicPartition(topics.commands, 0)
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        out: list[Command] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            out += [decode_command(r.value) for r in batch.get(tp, [])]
        return out


async def test_scopes_are_enforced_and_the_principal_is_recorded(
    secured: tuple[Cluster, ApiSettings, dict[str, str]],
) -> None:
    c, settings, tokens = secured
    read, operate, admin = (_bearer(tokens[s]) for s in ("read", "operate", "admin"))
    async with running_api(settings) as api:
        # no token, an unknown token: 401 with the challenge
        await _refused(api, "GET", "/health", 401)
        unknown = await _refused(api, "GET", "/streams", 401, headers=_bearer("spt_nope"))
        assert 'error="invalid_token"' in unknown.headers["WWW-Authenticate"]
        await _refused(api, "GET", "/dashboard/snapshot", 401)
        # a read token reads, the dashboard's data too (header or the page's cookie)
        await _ready(api, c.fold().seq, read)
        assert (await api.http.get("/dashboard/snapshot", headers=read)).status_code == 200
        cookie = {"streamplane_token": tokens["read"]}
        snap = await api.http.get("/dashboard/snapshot", cookies=cookie)
        assert snap.status_code == 200
        # ... but a write with it is refused before anything is sent
        denied = await _refused(
            api, "POST", "/streams", 403, headers=read, json={"stream_id": "cam-denied"}
        )
        assert 'scope="operate"' in denied.headers["WWW-Authenticate"]
        assert denied.json()["error"] == "forbidden"
        # a cookie never authorises a write, whatever its scope
        await _refused(
            api, "POST", "/streams", 401, cookies={"streamplane_token": tokens["admin"]},
            json={"stream_id": "cam-cookie"},
        )  # fmt: skip
        # operate writes streams but not capacity; admin does both
        done = await api.call("POST", "/streams", headers=operate, json={"stream_id": "cam-1"})
        await _refused(
            api, "PUT", "/instances/w1/capacity", 403, headers=operate, json={"max_streams": 12}
        )
        resized = await api.call(
            "PUT", "/instances/w1/capacity", headers=admin, json={"max_streams": 12}
        )
        # the principal: on the command and on every event it caused, outcome included
        assert done["outcome"]["principal"] == "t-operate"
        assert done["events"][0]["type"] == "StreamRegistered"
        assert {e["principal"] for e in done["events"]} == {"t-operate"}
        assert resized["outcome"]["principal"] == "t-admin"
        sent = {x.command_id: x.principal for x in await _commands(c.bootstrap, c.topics)}
        assert sent == {done["command_id"]: "t-operate", resized["command_id"]: "t-admin"}
        assert "cam-denied" not in c.fold().streams and "cam-cookie" not in c.fold().streams
        # cam-1's placement followed from the command at once: it names the command and who
        await asyncio.sleep(0.5)
        assigned = [e for e in c.log.events if e.type == "StreamAssigned"]  # type: ignore[attr-defined]
        assert [(e.stream_id, e.principal) for e in assigned] == [("cam-1", "t-operate")]
        assert assigned[0].causationid == done["command_id"]
        # revoking takes effect on the next request of the running API
        revoke(settings.api_tokens_file, "t-read")  # type: ignore[arg-type]
        await _refused(api, "GET", "/health", 401, headers=read)


async def test_anonymous_reads_read_but_never_write(
    secured: tuple[Cluster, ApiSettings, dict[str, str]],
) -> None:
    _, settings, tokens = secured
    anonymous = settings.model_copy(update={"api_anonymous_reads": True})
    async with running_api(anonymous, read_model=False) as api:
        assert (await api.http.get("/dashboard/snapshot")).status_code == 200
        assert (await api.http.get("/alerts")).status_code in (200, 503)  # no 401
        await _refused(api, "POST", "/rebalance", 401)
        await _refused(api, "POST", "/rebalance", 403, headers=_bearer(tokens["read"]))
