"""docker-compose.secure.yml, checked without Docker (as tests/unit/test_compose.py checks the
base file): every streamplane service connects as the principal of its role with the
settings its process reads (merged over the base file's as compose merges them), the
one-shots run real CLI invocations in the right order, and ``infra compose-secrets`` writes
0600 files with the authorizer on and nothing else allowed. The broker configuration itself
runs for real in tests/integration/test_compose_secure_broker.py."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from typer.testing import CliRunner

from control_plane.cli import app
from control_plane.tools.infra.acls import ADMIN, PRINCIPALS, ROLES
from control_plane.tools.infra.compose_secure import BROKER, VOLUMES, write_secrets
from tests.support.compose_volumes import named_mounts, visible
from tests.unit.test_compose import (
    COMPOSE_FILE,
    SERVICES,
    environment,
    only_env,
    settings_class,
)

SECURE_FILE = COMPOSE_FILE.with_name("docker-compose.secure.yml")
SECURE: dict[str, Any] = yaml.safe_load(SECURE_FILE.read_text())
OVERRIDES: dict[str, dict[str, Any]] = SECURE["services"]
SECRETS_DIR = "/run/streamplane-kafka"
#: the role each streamplane sub-command runs as (the least-privilege table, acls.py)
ROLE_OF = {
    "topics": "orchestrator",
    "orchestrator": "orchestrator",
    "projector": "projector",
    "read-model": "read-model",
    "monitor": "monitor",
    "api": "operator",
    "worker": "worker",
}
STREAMPLANE = [
    n for n, s in SERVICES.items() if "build" in s and "entrypoint" not in s
]  # the base file's streamplane services


def merged_env(name: str) -> dict[str, str]:
    """The service's environment with the secure file's merged over it (by key)."""
    extra = OVERRIDES.get(name, {}).get("environment") or {}
    return {**environment(name), **{k: str(v) for k, v in extra.items()}}


def _command(name: str) -> list[str]:
    return [str(c) for c in OVERRIDES[name]["command"]]


def parse_infra(argv: list[str]) -> dict[str, Any]:
    """``streamplane infra <sub> ...`` parsed by the real CLI (values converted, checked)."""
    group = typer.main.get_command(app)
    root = typer.Context(group, info_name="streamplane")
    infra = group.get_command(root, argv[0])  # type: ignore[attr-defined]
    assert infra is not None
    ctx = typer.Context(infra, info_name=argv[0], parent=root)
    sub = infra.get_command(ctx, argv[1])
    assert sub is not None, f"streamplane infra has no sub-command {argv[1]!r}"
    with sub.make_context(argv[1], argv[2:], parent=ctx) as sub_ctx:
        return dict(sub_ctx.params)


def test_every_role_in_the_table_has_a_principal() -> None:
    assert set(ROLE_OF.values()) <= {r.name for r in ROLES}
    assert ADMIN in PRINCIPALS


@pytest.mark.parametrize("name", STREAMPLANE)
def test_each_service_connects_as_its_role(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    sub_command = str(SERVICES[name]["command"][0])
    env = {k: v for k, v in merged_env(name).items() if k.startswith("STREAMPLANE_")}
    role = ROLE_OF[sub_command]
    assert env["STREAMPLANE_KAFKA_SASL_USERNAME"] == role, name
    assert env["STREAMPLANE_KAFKA_SASL_PASSWORD_FILE"] == f"{SECRETS_DIR}/{role}.password"
    mounts = OVERRIDES[name]["volumes"]
    assert any(
        isinstance(m, dict) and m["target"] == SECRETS_DIR and m.get("read_only") for m in mounts
    ), f"{name} does not mount the secrets read-only"
    only_env(monkeypatch, env)
    access = settings_class(name)().kafka_access  # type: ignore[attr-defined]
    assert (access.security_protocol, access.sasl_mechanism) == ("SASL_PLAINTEXT", "SCRAM-SHA-512")
    assert access.principal == f"User:{role}"
    assert not any("password" in v.lower() and "/" not in v for v in env.values())


def test_the_one_shots_run_real_commands_in_order() -> None:
    secrets, acls = _command("kafka-secrets"), _command("kafka-acls")
    assert parse_infra(secrets)["directory"] == Path(SECRETS_DIR)
    assert parse_infra(acls)["topic_prefix"] == "streamplane"
    for argv in (secrets, acls):
        result = CliRunner().invoke(app, [*argv, "--help"])
        assert result.exit_code == 0, result.output
    after = OVERRIDES["kafka"]["depends_on"]
    assert after == {"kafka-secrets": {"condition": "service_completed_successfully"}}
    assert OVERRIDES["kafka-acls"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert OVERRIDES["topics"]["depends_on"]["kafka-acls"] == {
        "condition": "service_completed_successfully"
    }
    # the broker formats and starts on the generated files; its data is not the plaintext's
    [script] = OVERRIDES["kafka"]["command"]
    assert f"java @{SECRETS_DIR}/format.args" in script
    assert f"{SECRETS_DIR}/server.properties" in script
    assert "kafka-data-secure:/var/lib/kafka/data" in OVERRIDES["kafka"]["volumes"]


def test_compose_secrets_writes_private_files_with_the_authorizer_on(tmp_path: Path) -> None:
    folder = tmp_path / "secrets"
    names = write_secrets(folder, kafka_uid=None, app_uid=None)
    assert {f"{p}/{p}.password" for p in PRINCIPALS} <= set(names)
    broker = folder / BROKER
    assert {"server.properties", "format.args", "admin-client.properties"} <= {
        p.name for p in broker.iterdir()
    }
    for path in [folder, *folder.rglob("*")]:
        want = 0o711 if path.is_dir() else 0o600
        assert stat.S_IMODE(path.stat().st_mode) == want, path
    props = dict(
        line.split("=", 1) for line in (broker / "server.properties").read_text().splitlines()
    )
    assert props["authorizer.class.name"].endswith("StandardAuthorizer")
    assert props["allow.everyone.if.no.acl.found"] == "false"
    assert props["super.users"] == f"User:{ADMIN}"
    assert props["auto.create.topics.enable"] == "false"
    assert props["advertised.listeners"] == "INTERNAL://kafka:9092,HOST://127.0.0.1:19092"
    assert "PLAINTEXT:PLAINTEXT" not in props["listener.security.protocol.map"]
    args = (broker / "format.args").read_text()
    assert all(f"name={p}," in args for p in PRINCIPALS)
    # the broker's container sees its volume at SECRETS_DIR, not at the one-shot's broker/
    assert f"{SECRETS_DIR}/server.properties" in args
    # kept on a second run: the broker's store holds the first passwords
    before = (folder / "worker/worker.password").read_text()
    write_secrets(folder, kafka_uid=None, app_uid=None)
    assert (folder / "worker/worker.password").read_text() == before


def test_the_one_shot_fills_one_volume_per_reader() -> None:
    writer = OVERRIDES["kafka-secrets"]
    mounts = named_mounts(writer, set(SECURE["volumes"]))
    assert mounts == {volume: f"{SECRETS_DIR}/{sub}" for sub, volume in VOLUMES.items()}
    assert {sub for sub in VOLUMES if sub != BROKER} == set(PRINCIPALS)


@pytest.mark.parametrize("name", sorted(set(OVERRIDES) - {"kafka-secrets"}))
def test_no_container_reads_another_roles_password(name: str, tmp_path: Path) -> None:
    """What ``infra compose-secrets`` writes, seen through each service's mounts: its own
    role's password only. ``kafka-acls`` holds the admin's; the broker holds every user's (it
    formats its store with their SCRAM credentials: it is who checks them)."""
    write_secrets(tmp_path / SECRETS_DIR.lstrip("/"), kafka_uid=None, app_uid=None)
    passwords = {
        p: (tmp_path / SECRETS_DIR.lstrip("/") / p / f"{p}.password").read_text().strip()
        for p in PRINCIPALS
    }
    seen = visible(OVERRIDES[name], OVERRIDES["kafka-secrets"], tmp_path, set(SECURE["volumes"]))
    readable = {p for p, pw in passwords.items() if any(pw in text for text in seen.values())}
    if name == "kafka":
        assert readable == set(PRINCIPALS)
        return
    env = OVERRIDES[name].get("environment") or {}
    own = env.get("STREAMPLANE_KAFKA_SASL_USERNAME", ADMIN)  # kafka-acls runs as the admin
    assert readable == {own}, f"{name} as {own} can read the passwords of {sorted(readable)}"
    if "STREAMPLANE_KAFKA_SASL_PASSWORD_FILE" in env:
        assert seen[env["STREAMPLANE_KAFKA_SASL_PASSWORD_FILE"]].strip() == passwords[own]


def test_compose_secrets_cli_prints_no_secret(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["infra", "compose-secrets", "--dir", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    for path in (tmp_path / "s").rglob("*.password"):
        assert path.read_text().strip() not in result.output
