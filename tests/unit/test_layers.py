"""The layer rule of docs/architecture.md, held against every module's imports.

The rule is read from the document itself (its ```layers block), so the picture a newcomer
reads and the check that runs are one text. A new module must be placed in a unit of the
table, and a new import that points up or sideways fails here, naming the edge.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.imports import PACKAGES, ROOT, modules, read_rules, violations


def test_every_module_keeps_the_layer_rule() -> None:
    problems = violations(read_rules())
    assert problems == [], "imports against docs/architecture.md:\n" + "\n".join(problems)


def test_every_unit_of_the_table_exists() -> None:
    names = {name for name, _ in modules()}
    for unit in read_rules().units:
        for prefix in unit.prefixes:
            assert any(n == prefix or n.startswith(prefix + ".") for n in names), (
                f"unit {unit.name}: no module {prefix}"
            )


def _copy(tmp_path: Path) -> Path:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package)
    return tmp_path


def _plant(root: Path, module: str, line: str) -> None:
    path = root / (module.replace(".", "/") + ".py")
    if not path.exists():  # a package: plant into its __init__.py
        path = root / module.replace(".", "/") / "__init__.py"
    path.write_text(path.read_text() + f"\n\ndef _planted() -> None:\n    {line}\n")


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        # up: the fold reads the orchestrator (lazily, inside a function)
        (
            "projections.fold.state",
            "from control_plane.orchestrator import EnhancedStreamOrchestrator",
            "projections.fold.state -> control_plane.orchestrator.EnhancedStreamOrchestrator",
        ),
        # sideways: one process imports another
        (
            "control_plane.api",
            "import projections.read_model",
            "sideways from api to read_model",
        ),
        # never: the worker reaches into the control plane's core
        (
            "worker_agent.reconcile",
            "from control_plane.decide import decide",
            "never worker_agent -> control_plane",
        ),
        # the contract imports the fold
        ("events.codec", "import projections.fold", "never events -> projections"),
        # a private subpackage used from outside its package
        (
            "projections.io.replay_batch",
            "from events._fast.decoder import FastDecoder",
            "events._fast is private to events",
        ),
        # up inside one package: the decide core uses the Kafka I/O
        (
            "control_plane.decide.placement",
            "from projections.io.kafka import make_producer",
            "up from decide (3) to io (4)",
        ),
    ],
)
def test_a_planted_import_is_named(tmp_path: Path, module: str, line: str, expected: str) -> None:
    root = _copy(tmp_path)
    assert violations(read_rules(), root) == []
    _plant(root, module, line)
    problems = violations(read_rules(), root)
    assert problems, f"{line!r} in {module} went unnoticed"
    assert all(p.startswith(module + " -> ") for p in problems), problems
    assert any(expected in p for p in problems), problems


def test_a_module_outside_the_table_is_named() -> None:
    rules = read_rules()
    units = tuple(u for u in rules.units if u.name != "resilience")
    without = rules.__class__(units, rules.never, rules.private)
    problems = violations(without)
    unplaced = [p for p in problems if "in no unit of the layer table" in p]
    assert unplaced and all(p.startswith("resilience") for p in unplaced), problems
