"""docker-compose.yml and the Dockerfile, checked without Docker.

Nothing here starts a container. The compose file is read as data and each streamplane
service is checked against the code it runs: its command is parsed by the real CLI (a renamed
sub-command or option, or a value of the wrong type, fails here), every ``STREAMPLANE_*``
variable it sets must be a field of the settings class that reads it, and the wiring
(depends_on, distinct worker ids, loopback-only ports, the one-shot that creates the topics)
must hold.
"""

from __future__ import annotations

import functools
import graphlib
import json
import os
import re
import shlex
import stat
import subprocess
import tomllib
from importlib import import_module
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from control_plane.api import ApiSettings
from control_plane.cli import app
from control_plane.monitor import MonitorSettings
from control_plane.orchestrator.settings import OrchestratorSettings
from projections.io.read_store import ReadModelSettings
from projections.projector.app import ProjectorSettings
from tests.support.compose_volumes import named_mounts, visible
from worker_agent.settings import WorkerSettings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
PYPROJECT = REPO / "pyproject.toml"

#: the settings class each sub-command builds from the environment
SETTINGS: dict[str, type[BaseSettings]] = {
    "orchestrator": OrchestratorSettings,
    "worker": WorkerSettings,
    "projector": ProjectorSettings,
    "read-model": ReadModelSettings,
    "monitor": MonitorSettings,
    "api": ApiSettings,
    "topics": OrchestratorSettings,  # the CLI reads its --bootstrap/--topic-prefix defaults there
}
KAFKA_IN_NETWORK = "kafka:9092"
POSTGRES_IN_NETWORK = "@postgres:5432/"
CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}


def _load_services() -> dict[str, dict[str, Any]]:
    return dict(yaml.safe_load(COMPOSE_FILE.read_text())["services"])


SERVICES = _load_services()
#: the services built from this repository (the others are Kafka and PostgreSQL)
OURS = sorted(name for name, s in SERVICES.items() if "build" in s)
#: ours that run a `streamplane` sub-command (all of them: none overrides the entrypoint)
CLI_SERVICES = [n for n in OURS if "entrypoint" not in SERVICES[n]]
#: ours that run once and exit (the others must keep running)
ONE_SHOTS = [n for n in OURS if SERVICES[n].get("restart") == "no"]


def command(name: str) -> list[str]:
    cmd = SERVICES[name].get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else [str(c) for c in cmd]


def environment(name: str) -> dict[str, str]:
    """The service's environment (compose allows a mapping or ``KEY=value`` items)."""
    env = SERVICES[name].get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def settings_class(name: str) -> type[BaseSettings]:
    return SETTINGS[command(name)[0]]


def services_running(sub_command: str) -> list[str]:
    return [n for n in CLI_SERVICES if command(n)[0] == sub_command]


@functools.cache
def _cli() -> Any:
    # typer >= 0.29 runs on its own copy of click: only typer's names are used here
    return typer.main.get_command(app)


def parse(argv: list[str]) -> dict[str, Any]:
    """The options of ``streamplane <argv>`` as the real CLI parses them: every value is
    converted and checked (``typer.BadParameter`` if it does not fit), nothing is run."""
    group = _cli()
    root = typer.Context(group, info_name="streamplane")
    name, *rest = argv
    sub = group.get_command(root, name)
    assert sub is not None, f"streamplane has no sub-command {name!r}"
    with sub.make_context(name, rest, parent=root) as ctx:
        return dict(ctx.params)


def only_env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    """Make ``env`` the only ``STREAMPLANE_*`` variables (the developer's are removed)."""
    for key in [k for k in os.environ if k.upper().startswith("STREAMPLANE_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)


# --- the checks work -------------------------------------------------------------------------


def test_the_cli_checks_catch_renames_and_bad_values():
    runner = CliRunner()
    assert runner.invoke(app, ["worker", "--max-streams", "3", "--help"]).exit_code == 0
    assert runner.invoke(app, ["worker", "--renamed-option", "x", "--help"]).exit_code != 0
    assert runner.invoke(app, ["renamed-command", "--help"]).exit_code != 0
    with pytest.raises(typer.BadParameter):
        parse(["worker", "--max-streams", "many"])
    assert parse(["worker", "--max-streams", "3"])["max_streams"] == 3


# --- the compose file ------------------------------------------------------------------------


def test_the_whole_system_is_there():
    assert {command(n)[0] for n in CLI_SERVICES} == set(SETTINGS)
    assert len(services_running("worker")) >= 3
    replicas = sum(
        int(SERVICES[n].get("deploy", {}).get("replicas", 1))
        for n in services_running("orchestrator")
    )
    assert replicas >= 2, "a leader and a hot standby"
    assert CLI_SERVICES == OURS
    assert [command(n) for n in ONE_SHOTS] == [["topics"]]
    # one image, built from this repository
    assert {SERVICES[n]["build"] for n in OURS} == {"."}
    assert len({SERVICES[n].get("image") for n in OURS}) == 1


@pytest.mark.parametrize("name", CLI_SERVICES)
def test_command_is_a_real_cli_invocation(name: str):
    argv = command(name)
    result = CliRunner().invoke(app, [*argv, "--help"])
    assert result.exit_code == 0, f"streamplane {shlex.join(argv)} --help:\n{result.output}"
    parse(argv)  # and every value has the option's type


@pytest.mark.parametrize("name", OURS)
def test_environment_is_read_by_the_settings(name: str, monkeypatch: pytest.MonkeyPatch):
    cls = settings_class(name)
    prefix = str(cls.model_config.get("env_prefix", ""))
    env = {k: v for k, v in environment(name).items() if k.upper().startswith("STREAMPLANE_")}
    unknown = [
        k
        for k in env
        if not k.upper().startswith(prefix.upper())
        or k[len(prefix) :].lower() not in cls.model_fields
    ]
    assert not unknown, f"{name}: {cls.__name__} has no field for {unknown}"
    only_env(monkeypatch, env)
    settings: Any = cls()  # the values validate as the process would read them
    # the defaults point at the host's 127.0.0.1 ports, which a container cannot reach
    assert settings.kafka_bootstrap == KAFKA_IN_NETWORK
    if "database_url" in cls.model_fields:
        assert POSTGRES_IN_NETWORK in settings.database_url


def test_every_service_uses_one_topic_prefix(monkeypatch: pytest.MonkeyPatch):
    prefixes = set()
    for name in OURS:
        only_env(monkeypatch, environment(name))
        prefix = parse(command(name)).get("topic_prefix") if name in CLI_SERVICES else None
        prefixes.add(prefix or settings_class(name)().topic_prefix)  # type: ignore[attr-defined]
    assert len(prefixes) == 1, prefixes


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_depends_on_existing_services_with_valid_conditions(name: str):
    deps = SERVICES[name].get("depends_on", {})
    assert isinstance(deps, dict), "the long form, with conditions"
    for dep, spec in deps.items():
        assert dep in SERVICES and dep != name
        assert spec["condition"] in CONDITIONS
        if spec["condition"] == "service_healthy":
            assert "healthcheck" in SERVICES[dep], f"{dep} has no healthcheck to wait for"


def test_startup_order_has_no_cycle():
    graph = {n: set(s.get("depends_on", {})) for n, s in SERVICES.items()}
    order = list(graphlib.TopologicalSorter(graph).static_order())
    assert order.index("kafka") < order.index("topics") < order.index("orchestrator")


@pytest.mark.parametrize("name", OURS)
def test_streamplane_services_wait_for_kafka_postgres_and_the_topics(name: str):
    service, deps = SERVICES[name], SERVICES[name].get("depends_on", {})
    assert deps["kafka"]["condition"] == "service_healthy"
    if "STREAMPLANE_DATABASE_URL" in environment(name):
        assert deps["postgres"]["condition"] == "service_healthy"
    if name in ONE_SHOTS:  # run once, never restarted
        assert service.get("restart", "no") == "no"
        return
    assert service["restart"] == "unless-stopped"
    for one_shot in ONE_SHOTS:
        assert deps[one_shot]["condition"] == "service_completed_successfully"


def test_workers_have_distinct_ids_and_run_the_demo_handler(monkeypatch: pytest.MonkeyPatch):
    ids = []
    for name in services_running("worker"):
        options, env = parse(command(name)), environment(name)
        assert options["server_id"] or env.get("STREAMPLANE_SERVER_ID"), "a stable id, set"
        only_env(monkeypatch, env)
        explicit = {k: options[k] for k in ("server_id", "max_streams", "handler")}
        settings = WorkerSettings(**{k: v for k, v in explicit.items() if v is not None})
        assert settings.handler == "demo"
        assert settings.max_streams > 0
        ids.append(settings.server_id)
    assert len(set(ids)) == len(ids) >= 3, ids


def test_api_listens_on_its_published_port_and_is_health_checked():
    (name,) = services_running("api")
    options = parse(command(name))
    assert options["host"] == "0.0.0.0", "reachable through the published port"
    port = options["port"]
    assert any(str(p).endswith(f":{port}") for p in SERVICES[name]["ports"])
    probe = " ".join(SERVICES[name]["healthcheck"]["test"])
    assert f"127.0.0.1:{port}/health" in probe
    # one writer of the read model: the read-model service, not the API as well
    assert options["with_read_model"] is False
    assert len(services_running("read-model")) == 1


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_published_ports_are_bound_to_loopback(name: str):
    for port in SERVICES[name].get("ports", []):
        if isinstance(port, dict):
            assert port.get("host_ip") == "127.0.0.1", port
        else:
            assert str(port).startswith("127.0.0.1:"), port


def test_kafka_never_auto_creates_topics():
    # an auto-created control log would get one partition and the broker's retention
    kafkas = [s for s in SERVICES.values() if str(s.get("image", "")).startswith("apache/kafka")]
    assert kafkas
    for service in kafkas:
        assert service["environment"]["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


# --- the Dockerfile --------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments dropped, continuation lines joined."""
    out: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line.removesuffix(chr(92)).strip()}".strip()
        if not line.endswith("\\"):
            op, _, args = pending.partition(" ")
            out.append((op.upper(), args.strip()))
            pending = ""
    return out


def test_dockerfile_entrypoint_is_the_console_script():
    entrypoints = [args for op, args in dockerfile() if op == "ENTRYPOINT"]
    assert entrypoints and json.loads(entrypoints[-1]) == ["streamplane"]
    target = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]["streamplane"]
    module, _, attr = target.partition(":")
    assert callable(getattr(import_module(module), attr))


def test_dockerfile_installs_the_project_and_runs_as_non_root():
    steps = dockerfile()
    assert all(args.split()[0] == "python:3.11-slim" for op, args in steps if op == "FROM")
    runs = [args for op, args in steps if op == "RUN"]
    assert any(re.search(r"\bpip install \.(\s|;|&|$)", r) for r in runs), runs
    assert not any("--editable" in r or " -e " in r or "[dev]" in r for r in runs)
    last_from = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    users = [args for op, args in steps[last_from:] if op == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}


def test_dockerignore_keeps_out_local_state_but_not_the_sources():
    patterns = {
        line.strip().rstrip("/")
        for line in DOCKERIGNORE.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".venv", ".git", ".cache"} <= patterns
    packages = tomllib.loads(PYPROJECT.read_text())["tool"]["setuptools"]["packages"]["find"]
    needed = {"pyproject.toml", "README.md", *(p.rstrip("*") for p in packages["include"])}
    assert not needed & patterns


# --- PostgreSQL: passwords and roles -----------------------------------------------------------


def test_postgres_takes_passwords_and_its_roles_sql_is_current():
    from control_plane.tools.infra.pg_auth import COMPOSE_ROLES_SQL, compose_roles_sql

    env = environment("postgres")
    assert env["POSTGRES_HOST_AUTH_METHOD"] == "scram-sha-256"
    assert "--auth-host=scram-sha-256" in env["POSTGRES_INITDB_ARGS"]
    assert "POSTGRES_PASSWORD" not in env and env["POSTGRES_PASSWORD_FILE"]
    assert SERVICES["postgres"]["depends_on"]["pg-secrets"]["condition"] == (
        "service_completed_successfully"
    )
    assert (REPO / COMPOSE_ROLES_SQL).read_text() == compose_roles_sql(), (
        "regenerate: python -c 'from control_plane.tools.infra.pg_auth import *; "
        'open(COMPOSE_ROLES_SQL, "w").write(compose_roles_sql())\''
    )


def test_each_service_connects_as_its_role_without_a_password_in_the_url():
    roles = {"read-model": "streamplane_read_model", "api": "streamplane_api"}
    roles["monitor"] = "streamplane_api"  # it only reads the read model
    for name in OURS:
        env = environment(name)
        url = env.get("STREAMPLANE_DATABASE_URL")
        if url is None:
            continue
        user = url.split("://", 1)[1].split("@", 1)[0]
        assert ":" not in user, f"{name}: a password in the URL"
        assert user == roles[name], f"{name} connects as {user}"
        assert env["PGPASSFILE"].startswith("/run/streamplane-secrets/")


def test_no_container_reads_another_roles_database_password(tmp_path: Path) -> None:
    """The real pg-secrets script, run into the one-shot's mounts: each client container
    sees its own role's pgpass file and no other role's password (nor the superuser's)."""
    writer = SERVICES["pg-secrets"]
    volumes = set(yaml.safe_load(COMPOSE_FILE.read_text())["volumes"])
    for target in named_mounts(writer, volumes).values():
        (tmp_path / target.lstrip("/")).mkdir(parents=True)  # what Docker mounts
    script = REPO / "infra/postgres/secrets.sh"
    env = {**os.environ, "STREAMPLANE_SECRETS_ROOT": str(tmp_path)}
    done = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    passwords = {
        p.stem: p.read_text().strip()
        for p in (tmp_path / "run/streamplane-secrets").glob("*.password")
    }
    assert set(passwords) == {"postgres", "streamplane_read_model", "streamplane_api"}
    assert not any(pw in done.stdout + done.stderr for pw in passwords.values())
    for name in OURS:
        seen = visible(SERVICES[name], writer, tmp_path, volumes)
        url = environment(name).get("STREAMPLANE_DATABASE_URL")
        role = url.split("://", 1)[1].split("@", 1)[0] if url else None
        if role is not None:
            pgpass = seen.get(environment(name)["PGPASSFILE"])
            assert pgpass == f"postgres:5432:*:{role}:{passwords[role]}\n", name
        others = [pw for r, pw in passwords.items() if r != role]
        leaked = [path for path, text in seen.items() if any(pw in text for pw in others)]
        assert not leaked, f"{name} can read another role's password in {leaked}"
    for path in (tmp_path / "run/streamplane-pgpass").rglob("*.pgpass"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_the_api_has_a_token_file_on_a_volume():
    env = environment("api")
    path = env["STREAMPLANE_API_TOKENS_FILE"]
    mounts = [str(v).split(":")[1] for v in SERVICES["api"]["volumes"]]
    assert any(path.startswith(m + "/") for m in mounts), (path, mounts)
    assert any("/var/lib/streamplane-api" in args for op, args in dockerfile() if op == "RUN")
