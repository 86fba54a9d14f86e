"""pytest imports test modules by their base name (the tests have no __init__.py): two test
files with one name in different folders stop the whole run at collection, which only a run
of every folder at once shows (it happened twice after merges). Checked here in a second."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_has_its_own_name() -> None:
    names = Counter(p.name for p in TESTS.rglob("test_*.py"))
    assert not [n for n, k in names.items() if k > 1], names.most_common(3)
