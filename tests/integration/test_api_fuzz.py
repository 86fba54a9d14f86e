"""A property-based fuzz of every endpoint of the OpenAPI document (schemathesis): generated
requests, valid and invalid, against a real ``streamplane api`` process (uvicorn, its own
read model in PostgreSQL) in front of a real orchestrator and a real worker. Every answer
must be no 5xx, have a status the document lists, and a body its schema describes
(schemathesis' checks). A failure names the operation and the request that broke it.
The API runs with a token file and every request carries an ``admin`` token, so the fuzz
reaches the handlers behind authentication (test_api_auth.py checks the refusals).

Bounded: at most MAX_EXAMPLES generated requests per operation and mode (valid data, then
invalid data), a few minutes in all on 2 cores.

Schemathesis' own pytest integration (``schema.parametrize()`` over a fixture) does not run
under pytest 9, so the test walks the operations itself: one hypothesis run per operation
and mode, every failure collected before the test fails."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from support.cluster import open_cluster

from control_plane.api.tokens import Scope, create
from control_plane.tools.harness import CLI
from events import commands as cmd

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: generated requests per operation (each write waits for the orchestrator's answer)
MAX_EXAMPLES = 25
#: bound of one fuzzed request (commands wait up to STREAMPLANE_API_COMMAND_WAIT)
REQUEST_TIMEOUT = 30.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _ready(base: str, seq: int, headers: dict[str, str], within: float = 60.0) -> None:
    """Wait until the API answers /health with its read model at ``seq`` or later."""
    import asyncio

    async with httpx.AsyncClient(base_url=base, timeout=5, headers=headers) as client:
        async with asyncio.timeout(within):
            while True:
                try:
                    health = (await client.get("/health")).json()
                    if health.get("as_of_seq", -1) >= seq:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)


@pytest.fixture
async def api(
    request: pytest.FixtureRequest,
    kafka_bootstrap: str,
    topic_prefix: str,
    database_url: str,
    pg_schema: str,
    tmp_path: Path,
) -> AsyncIterator[tuple[str, dict[str, str]]]:
    """The URL of a ``streamplane api`` process over a real cluster with a few streams, and
    the headers of an ``admin`` token it accepts."""
    tokens_file = tmp_path / "api-tokens.json"
    auth = {"Authorization": f"Bearer {create(tokens_file, name='fuzz', scope=Scope.admin)}"}
    async with open_cluster(request, kafka_bootstrap, topic_prefix, tmp_path) as c:
        c.start_orchestrator("o1")
        c.start_worker("w1", max_streams=50)
        await c.wait_until(lambda: "w1" in c.fold().instances or "w1 unknown", 45, "w1 joins")
        for sid in ("fuzz-0", "fuzz-1", "fuzz-2"):
            await c.command(cmd.RegisterStream, stream_id=sid)
        port = _free_port()
        env = {
            "STREAMPLANE_DATABASE_URL": database_url,
            "STREAMPLANE_DATABASE_SCHEMA": pg_schema,
            "STREAMPLANE_API_COMMAND_WAIT": "10",
            "STREAMPLANE_API_TOKENS_FILE": str(tokens_file),
        }
        args = [*CLI, "api", "--host", "127.0.0.1", "--port", str(port)]
        c.children.spawn("api", "api", args, env)
        base = f"http://127.0.0.1:{port}"
        await _ready(base, c.fold().seq, auth)
        yield base, auth


def _fuzz(
    operation: Any, mode: schemathesis.GenerationMode, base: str, auth: dict[str, str]
) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def run(case: Any) -> None:
        excluded = []
        if case.path == "/state" and {"at", "seq"} <= set(case.query or {}):
            # the document cannot say "at most one of two query parameters" (OpenAPI has no
            # such constraint), so a schema-valid request with both is rightly a 400
            excluded.append(positive_data_acceptance)
        case.call_and_validate(
            base_url=base, headers=auth, timeout=REQUEST_TIMEOUT, excluded_checks=excluded
        )

    run()


def _takes_input(operation: Any) -> bool:
    parts = (operation.path_parameters, operation.query, operation.headers, operation.body)
    return any(len(part) for part in parts)


def test_no_5xx_and_every_answer_matches_the_document(api: tuple[str, dict[str, str]]) -> None:
    api_base, auth = api
    # the API's own count before the fuzz: _ready's polls may have met a 503 while the
    # read model was still creating its tables (a documented answer, not the fuzz's)
    before = _answered(httpx.get(f"{api_base}/metrics", timeout=10).text)
    schema = schemathesis.openapi.from_url(f"{api_base}/openapi.json")
    # the token is ours to give (every request carries it): schemathesis must not make up
    # an Authorization header, nor count a request without one as "invalid data accepted"
    schema.config.generation.update(with_security_parameters=False)
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 16, [op.label for op in operations]
    failures: list[str] = []
    for operation in operations:
        for mode in schemathesis.GenerationMode:
            if mode is schemathesis.GenerationMode.NEGATIVE and not _takes_input(operation):
                continue  # nothing to make invalid (hypothesis would call it unsatisfiable)
            try:
                _fuzz(operation, mode, api_base, auth)
            except (Exception, BaseExceptionGroup) as exc:  # fuzz every operation, then fail
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
    after = _answered(httpx.get(f"{api_base}/metrics", timeout=10).text)
    answered = {s: n - before.get(s, 0.0) for s, n in after.items() if n > before.get(s, 0.0)}
    assert sum(answered.values()) >= 10 * len(operations), answered  # the fuzz really ran
    assert not [s for s in answered if s.startswith("5")], answered  # the API's own count


def _answered(metrics: str) -> dict[str, float]:
    """status -> requests answered, from the API's streamplane_api_requests_total."""
    out: dict[str, float] = {}
    for line in metrics.splitlines():
        if line.startswith("streamplane_api_requests_total{"):
            labels, value = line.rsplit(" ", 1)
            status = labels.split('status="', 1)[1].split('"', 1)[0]
            out[status] = out.get(status, 0.0) + float(value)
    return out
