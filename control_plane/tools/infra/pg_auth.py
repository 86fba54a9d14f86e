"""Password (SCRAM-SHA-256) authentication and least-privilege roles for the local
PostgreSQL.

Three roles, each with a random password generated once into a 0600 file of
``<cache>/postgres-secrets/`` (mode 0700), and one ``pgpass`` file holding all three, which
libpq and asyncpg read through ``PGPASSFILE``: URLs never carry a password, so no URL in a
log line, an error message or ``--help`` can leak one.

=========================  ==================================================================
``postgres``               the superuser: creates databases, schemas (the tests), roles
``streamplane_read_model`` the read model: creates and owns its tables (``CREATE`` on the
                           database and on ``public``)
``streamplane_api``        the API: ``SELECT`` on what the read model creates, nothing else
=========================  ==================================================================

The switch from trust happens once, over the still-trusted connection: set the passwords,
create the roles, then replace ``pg_hba.conf`` with ``scram-sha-256`` for TCP and reload
(:func:`secure`). A cluster made before this (trust) is converted on its next ``up``.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

from control_plane.tools.infra.config import DATABASE_NAME, PG_USER, cache_dir, pg_port

READ_MODEL_ROLE = "streamplane_read_model"
API_ROLE = "streamplane_api"
ROLES = (PG_USER, READ_MODEL_ROLE, API_ROLE)
#: what pg_hba.conf says once passwords are set: TCP on loopback, SCRAM only
HBA = (
    "# written by streamplane (control_plane/tools/infra/pg_auth.py)\n"
    "host all all 127.0.0.1/32 scram-sha-256\n"
    "host all all ::1/128 scram-sha-256\n"
)


def secrets_dir() -> Path:
    """``<cache>/postgres-secrets``, readable by its owner only."""
    path = cache_dir() / "postgres-secrets"
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` 0600 before writing (never readable by others, not even briefly)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.replace(tmp, path)


def password(role: str) -> str:
    """The role's password, generated on first use."""
    path = secrets_dir() / f"{role}.password"
    if not path.exists():
        _write_private(path, secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def pgpass_path() -> Path:
    """The pgpass file of every role (``PGPASSFILE``), rewritten for the current port."""
    path = secrets_dir() / "pgpass"
    lines = [f"127.0.0.1:{pg_port()}:*:{role}:{password(role)}\n" for role in ROLES]
    if not path.exists() or path.read_text() != "".join(lines):
        _write_private(path, "".join(lines))
    return path


def role_url(role: str) -> str:
    """The URL of the local database as ``role`` (no password: it is in the pgpass file)."""
    return f"postgresql://{role}@127.0.0.1:{pg_port()}/{DATABASE_NAME}"


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def role_statements(*, read_model: str, api: str, database: str) -> list[tuple[str, str]]:
    """(what, SQL) to create both roles (or reset their rights) in ``database``: the read
    model may create schemas and tables; the API may only read what the read model makes.
    Passwords are set separately (:func:`password_statement`), so that this SQL can be
    logged or shown in an error."""
    return [
        ("create roles", f"""DO $$ BEGIN
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{read_model}') THEN
                CREATE ROLE {read_model} LOGIN; END IF;
            IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{api}') THEN
                CREATE ROLE {api} LOGIN; END IF; END $$"""),
        ("read model rights", f"GRANT CONNECT, CREATE ON DATABASE {database} TO {read_model}"),
        ("read model on public", f"GRANT USAGE, CREATE ON SCHEMA public TO {read_model}"),
        ("api connect", f"GRANT CONNECT ON DATABASE {database} TO {api}"),
        ("api on public", f"GRANT USAGE ON SCHEMA public TO {api}"),
        ("api reads public", f"GRANT SELECT ON ALL TABLES IN SCHEMA public TO {api}"),
        ("api reads new tables", f"ALTER DEFAULT PRIVILEGES FOR ROLE {read_model} "
                                 f"GRANT SELECT ON TABLES TO {api}"),
        ("api sees new schemas", f"ALTER DEFAULT PRIVILEGES FOR ROLE {read_model} "
                                 f"GRANT USAGE ON SCHEMAS TO {api}"),
    ]  # fmt: skip


#: docker-compose.yml's PostgreSQL runs this at its first start (generated, checked by
#: tests/unit/test_compose.py): the roles and their rights; the passwords are set by
#: 20-passwords.sh beside it, from the generated secret files
COMPOSE_ROLES_SQL = "infra/postgres/initdb/10-roles.sql"


def compose_roles_sql() -> str:
    """The text of :data:`COMPOSE_ROLES_SQL`."""
    head = "-- generated from control_plane/tools/infra/pg_auth.py (role_statements); do not edit\n"
    body = role_statements(read_model=READ_MODEL_ROLE, api=API_ROLE, database=DATABASE_NAME)
    return head + "".join(f"-- {what}\n{sql};\n" for what, sql in body)


def password_statement(role: str, secret: str) -> str:
    """``ALTER ROLE ... PASSWORD``: hashed by the server (SCRAM); never log this one."""
    return f"ALTER ROLE {role} WITH LOGIN PASSWORD {_literal(secret)}"


def marker(data_dir: Path) -> Path:
    """Present once the cluster has passwords and a SCRAM pg_hba.conf."""
    return data_dir / "streamplane-scram"


def secure(
    data_dir: Path,
    psql: Callable[..., str],
    reload: Callable[[], None],
    write_hba: Callable[[str], None],
) -> None:
    """Set the passwords and roles over the trusted connection, then require SCRAM (once).
    ``psql(sql, database=..., secret=...)`` runs SQL given on stdin; with ``secret`` its
    failure must not quote the SQL (psql echoes the failing line)."""
    if marker(data_dir).exists():
        return
    roles = role_statements(read_model=READ_MODEL_ROLE, api=API_ROLE, database=DATABASE_NAME)
    psql(";\n".join(sql for _, sql in roles), database=DATABASE_NAME)
    for role in ROLES:
        sql = "SET password_encryption = 'scram-sha-256';\n"
        sql += password_statement(role, password(role))
        psql(sql, database=DATABASE_NAME, secret=True)
    write_hba(HBA)
    reload()
    _write_private(marker(data_dir), "scram-sha-256\n")
