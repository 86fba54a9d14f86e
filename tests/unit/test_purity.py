"""The pure core reads no clock, no randomness, no environment and does no I/O.

Units ``contract``, ``fold``, ``decide`` and ``alerts`` of docs/architecture.md, and the worker's
reconcile rule: everything they need (time, ids, settings) comes in as arguments. Checked on
the source (``ast``), so an import anywhere in a module counts.
"""

from __future__ import annotations

import ast
import shutil
from pathlib import Path

import pytest

from tests.support.imports import PACKAGES, ROOT, imports_of, modules, read_rules

PURE_UNITS = ("contract", "fold", "decide", "alerts")
PURE_MODULES = ("worker_agent.reconcile",)
#: modules (and their submodules) the pure core must not import
FORBIDDEN = (
    "time",
    "uuid",
    "random",
    "secrets",
    "os",
    "socket",
    "subprocess",
    "signal",
    "logging",
    "asyncio",
    "aiokafka",
    "asyncpg",
    "faust",
    "aiohttp",
    "pydantic_settings",  # BaseSettings reads the environment
)
#: calls that read the clock, whatever the module is imported as
CLOCK_CALLS = frozenset({"now", "utcnow", "today", "time", "monotonic", "perf_counter"})


def pure_modules(root: Path = ROOT) -> list[tuple[str, Path]]:
    rules = read_rules()
    out = []
    for name, path in modules(root):
        unit = rules.unit_of(name)
        if (unit is not None and unit.name in PURE_UNITS) or name in PURE_MODULES:
            out.append((name, path))
    return out


def impurities(root: Path = ROOT) -> list[str]:
    out = []
    for name, path in pure_modules(root):
        where = path.relative_to(root)
        for imp in imports_of(name, path):
            top = imp.target.split(".")[0]
            if top in FORBIDDEN:
                out.append(f"{name} imports {imp.target} ({where}:{imp.line})")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in CLOCK_CALLS
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id in ("datetime", "date", "time")
            ):
                out.append(f"{name} reads the clock: {node.func.value.id}.{node.func.attr}() "
                           f"({where}:{node.lineno})")  # fmt: skip
            if isinstance(node, ast.Attribute) and node.attr == "environ":
                out.append(f"{name} reads the environment ({where}:{node.lineno})")
    return out


def test_the_pure_core_is_pure() -> None:
    assert pure_modules(), "no pure module found: is docs/architecture.md's table read?"
    problems = impurities()
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    ("module", "line", "expected"),
    [
        ("control_plane.decide.cycle", "import time", "imports time"),
        ("projections.fold.driver", "from uuid import uuid4", "imports uuid.uuid4"),
        ("control_plane.decide.failures", "import os", "imports os"),
        ("projections.fold.transitions.streams", "import asyncio", "imports asyncio"),
        ("control_plane.decide.balancer.model", "import aiokafka", "imports aiokafka"),
        (
            "control_plane.decide.placement",
            "from pydantic_settings import BaseSettings",
            "imports pydantic_settings.BaseSettings",
        ),
        ("events.codec", "from datetime import datetime\n    datetime.now()", "reads the clock"),
        ("worker_agent.reconcile", "import random", "imports random"),
    ],
)
def test_a_planted_impurity_is_named(tmp_path: Path, module: str, line: str, expected: str) -> None:
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package)
    assert impurities(tmp_path) == []
    path = tmp_path / (module.replace(".", "/") + ".py")
    path.write_text(path.read_text() + f"\n\ndef _planted() -> None:\n    {line}\n")
    problems = impurities(tmp_path)
    assert len(problems) >= 1 and all(module in p for p in problems), problems
    assert any(expected in p for p in problems), problems
