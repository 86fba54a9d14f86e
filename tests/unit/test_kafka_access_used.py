"""Every Kafka client is made from a process's ``kafka_access`` (address *and* credentials),
never from the bare ``kafka_bootstrap`` address: a client made from the address alone
connects in plaintext and, on a secure cluster, fails (the monitor's dead-letter reader did,
found by the secure stack test after a merge). This scan finds a new read of
``.kafka_bootstrap`` outside the few places that want the address itself."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("control_plane", "projections", "worker_agent", "events", "kafka_auth")

#: module -> reads of ``.kafka_bootstrap`` it may make, and why
ALLOWED: dict[str, tuple[int, str]] = {
    "kafka_auth/access.py": (1, "builds the access from the address"),
    "control_plane/api/settings.py": (1, "copies the setting into the read model's settings"),
    "control_plane/cli/main.py": (1, "prints the address"),
    "control_plane/tools/demo.py": (3, "the local stack's address, before any client"),
    "projections/projector/app.py": (1, "Faust's broker URL; credentials go in its own option"),
}


def _reads(path: Path) -> int:
    tree = ast.parse(path.read_text(), filename=str(path))
    return sum(
        1
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr == "kafka_bootstrap"
        and isinstance(node.ctx, ast.Load)
    )


def test_clients_are_made_from_the_access_not_the_address() -> None:
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if n := _reads(path):
                found[path.relative_to(ROOT).as_posix()] = n
    unexpected = {name: n for name, n in found.items() if n > ALLOWED.get(name, (0, ""))[0]}
    assert not unexpected, (
        f"reads of .kafka_bootstrap {unexpected}: pass the settings' kafka_access to Kafka "
        "clients (or add the module to ALLOWED with the reason)"
    )


def test_the_scan_sees_a_read() -> None:
    probe = ast.parse("make_consumer(settings.kafka_bootstrap)")
    assert any(
        isinstance(n, ast.Attribute) and n.attr == "kafka_bootstrap" for n in ast.walk(probe)
    )
