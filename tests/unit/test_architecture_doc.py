"""docs/architecture.md stays true: the files it names exist, the walkthrough names at most
6 files on the control side and 4 on the worker side, and the functions it names exist."""

from __future__ import annotations

import re

from tests.support.imports import ARCHITECTURE, ROOT

TEXT = ARCHITECTURE.read_text(encoding="utf-8")


def _section(title: str) -> str:
    match = re.search(rf"^{re.escape(title)}.*?\n(.*?)(?=^\S[^\n]*:\n|^## |\Z)", TEXT, re.M | re.S)
    assert match is not None, f"no {title!r} in docs/architecture.md"
    return match.group(1)


def _definitions() -> set[str]:
    names: set[str] = set()
    for package in ("events", "resilience", "telemetry", "projections", "control_plane",
                    "worker_agent"):  # fmt: skip
        for path in (ROOT / package).rglob("*.py"):
            names.update(re.findall(r"^\s*(?:async )?(?:def|class) (\w+)", path.read_text(), re.M))
    return names


def test_every_file_named_exists() -> None:
    paths = set(re.findall(r"`((?:[\w.]+/)+[\w.]*)`", TEXT))
    paths |= set(re.findall(r"\*\*`([\w/.]+\.py)`\*\*", TEXT))
    assert paths
    missing = sorted(p for p in paths if not (ROOT / p.rstrip("/")).exists()
                     and not p.startswith("../"))  # fmt: skip
    assert missing == [], missing


def test_the_walkthrough_stays_short_and_names_real_functions() -> None:
    control = _section("Control side")
    worker = _section("Worker side")
    control_files = re.findall(r"^\d+\. \*\*`([\w/.]+)`\*\*", control, re.M)
    worker_files = re.findall(r"^\d+\. \*\*`([\w/.]+)`\*\*", worker, re.M)
    assert 1 <= len(set(control_files)) <= 6, control_files
    assert 1 <= len(set(worker_files)) <= 4, worker_files
    defined = _definitions()
    named = re.findall(r"`(?:[A-Za-z_]\w*\.)*([A-Za-z_]\w*)\(", control + worker)
    assert named
    assert sorted(set(named) - defined) == []
