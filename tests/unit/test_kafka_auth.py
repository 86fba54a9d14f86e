"""Settings to Kafka client arguments (kafka_auth), and the roles' ACL table (no broker)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from control_plane.tools.infra.acls import ROLES, Operation, Pattern, Resource, all_acls
from events.topics import Topics
from kafka_auth import KafkaAccess, KafkaAccessError, KafkaClientSettings, as_access
from worker_agent.settings import WorkerSettings


def test_a_bare_address_is_plaintext() -> None:
    kwargs = as_access("127.0.0.1:1").client_kwargs()
    assert kwargs == {"bootstrap_servers": "127.0.0.1:1", "security_protocol": "PLAINTEXT"}


def test_the_password_comes_from_its_file_when_a_client_is_made(tmp_path: Path) -> None:
    secret = tmp_path / "worker.password"
    secret.write_text("s3cret\n")
    access = KafkaAccess("h:1", "SASL_PLAINTEXT", "SCRAM-SHA-512", "worker", str(secret))
    kwargs = access.client_kwargs()
    assert kwargs["sasl_plain_password"] == "s3cret"
    assert kwargs["sasl_mechanism"] == "SCRAM-SHA-512" and kwargs["sasl_plain_username"] == "worker"
    assert "s3cret" not in repr(access)  # the value carries the file's path, not the secret
    assert access.principal == "User:worker"


def test_an_unreadable_password_file_names_the_setting(tmp_path: Path) -> None:
    access = KafkaAccess("h:1", "SASL_PLAINTEXT", "SCRAM-SHA-512", "w", str(tmp_path / "none"))
    with pytest.raises(KafkaAccessError, match="kafka_sasl_password_file: cannot read"):
        access.client_kwargs()


def test_sasl_without_a_user_is_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STREAMPLANE_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.delenv("STREAMPLANE_KAFKA_SASL_USERNAME", raising=False)
    with pytest.raises(ValidationError, match="kafka_sasl_username: required"):
        WorkerSettings()


def test_every_process_reads_the_same_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "STREAMPLANE_KAFKA_BOOTSTRAP": "b:1",
        "STREAMPLANE_KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "STREAMPLANE_KAFKA_SASL_USERNAME": "worker",
        "STREAMPLANE_KAFKA_SASL_PASSWORD_FILE": "/nowhere",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    expected = KafkaAccess("b:1", "SASL_PLAINTEXT", "SCRAM-SHA-512", "worker", "/nowhere")
    assert WorkerSettings().kafka_access == expected
    assert KafkaClientSettings().kafka_access == expected  # alone, as a tool uses it
    assert issubclass(WorkerSettings, KafkaClientSettings)


def _rules(role: str, prefix: str = "p") -> set[tuple[Resource, str, Pattern, Operation]]:
    return {
        (a.resource, a.name, a.pattern, a.operation)
        for a in all_acls(prefix)
        if a.principal == f"User:{role}"
    }


def test_workers_write_heartbeats_and_read_desired_only() -> None:
    topics, rules = Topics("p"), _rules("worker")
    literal = {(name, op) for _, name, pattern, op in rules if pattern is Pattern.LITERAL}
    assert literal == {(topics.heartbeats, Operation.WRITE), (topics.desired, Operation.READ)}
    # beyond that only reading the topics' settings (the contract check at start)
    others = {op for _, _, pattern, op in rules if pattern is Pattern.PREFIXED}
    assert others == {Operation.DESCRIBE_CONFIGS}


def test_only_the_orchestrator_writes_the_control_log_and_creates_topics() -> None:
    writers = {
        role.name
        for role in ROLES
        if (Resource.TOPIC, "p.events", Pattern.LITERAL, Operation.WRITE) in _rules(role.name)
    }
    assert writers == {"orchestrator"}
    creators = {r.name for r in ROLES if any(op is Operation.CREATE for *_, op in _rules(r.name))}
    assert creators == {"orchestrator"}
    operator = _rules("operator")
    assert (Resource.TOPIC, "p.commands", Pattern.LITERAL, Operation.WRITE) in operator
    assert not any(op in (Operation.ALL, Operation.CREATE) for *_, op in operator)
