"""The least-privilege roles of the local stack and docker-compose.yml (the SQL of
control_plane.tools.infra.pg_auth, the read model's real DDL): the read model's role creates
and writes its tables; the API's role reads them and can change nothing. Run against the
test database with roles of the test's own (so parallel runs never share one), each with a
password, which a SCRAM cluster checks and a trust one ignores."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from control_plane.tools.infra.pg_auth import password_statement, role_statements
from projections.io.read_store import TABLES, create_tables

pytestmark = pytest.mark.integration


def _as(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


@pytest.fixture
async def roles(database_url: str) -> AsyncIterator[dict[str, tuple[str, str]]]:
    """role kind -> (its name, its password), created for this test and dropped after."""
    suffix = uuid.uuid4().hex[:8]
    made = {kind: (f"t_{kind}_{suffix}", secrets.token_urlsafe(16)) for kind in ("rm", "api")}
    database = urlsplit(database_url).path.lstrip("/")
    admin = await asyncpg.connect(database_url, timeout=30)
    try:
        sql = role_statements(read_model=made["rm"][0], api=made["api"][0], database=database)
        for _, statement in sql:
            await admin.execute(statement)
        for name, secret in made.values():
            await admin.execute(password_statement(name, secret))
        yield made
    finally:
        for name, _ in made.values():
            for schema in await admin.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspowner = "
                "(SELECT oid FROM pg_roles WHERE rolname = $1)",
                name,
            ):
                await admin.execute(f'DROP SCHEMA "{schema["nspname"]}" CASCADE')
        for name, _ in made.values():
            await admin.execute(f"DROP OWNED BY {name}; DROP ROLE {name}")
        await admin.close()


async def test_the_api_role_reads_the_read_model_and_cannot_write(
    database_url: str, roles: dict[str, tuple[str, str]]
) -> None:
    (rm, rm_pw), (api, api_pw) = roles["rm"], roles["api"]
    schema = f"rm_{uuid.uuid4().hex[:8]}"
    writer = await asyncpg.connect(_as(database_url, rm), password=rm_pw, timeout=30)
    try:  # the read model makes its own schema and its real tables, and writes them
        await writer.execute(f"CREATE SCHEMA {schema}")
        await writer.execute(f"SET search_path = {schema}")
        await create_tables(writer, "read_model")
        await writer.execute("UPDATE projection_tracking SET last_seq = 7")
    finally:
        await writer.close()
    reader = await asyncpg.connect(
        _as(database_url, api),
        password=api_pw,
        timeout=30,
        server_settings={"search_path": schema},
    )
    try:
        for table in TABLES:
            await reader.fetch(f"SELECT * FROM {table} LIMIT 1")
        assert await reader.fetchval("SELECT last_seq FROM projection_tracking") == 7
        for attempt in (
            "UPDATE projection_tracking SET last_seq = 8",
            "INSERT INTO projection_tracking VALUES ('x', 0, 0)",
            "DELETE FROM streams",
            "TRUNCATE events",
            "DROP TABLE cluster",
            "CREATE TABLE sneaky (a int)",
            "CREATE TABLE public.sneaky (a int)",
            "CREATE SCHEMA sneaky",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await reader.execute(attempt)
    finally:
        await reader.close()
