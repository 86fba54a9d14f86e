"""docs/cli.md stays true: it names every command of the app and every exit code that
control_plane.tools.exits can end a command with."""

from __future__ import annotations

import re
from pathlib import Path

from support.cli_walk import commands

from control_plane.tools import exits

TEXT = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text(encoding="utf-8")


def test_every_command_is_in_the_table() -> None:
    rows = "\n".join(line for line in TEXT.splitlines() if line.startswith("| `"))
    named = {m.split()[0] for m in re.findall(r"`([a-z-]+(?: [a-z-]+)?)", rows)}
    named |= set(re.findall(r"`([a-z-]+ [a-z-]+)", rows))
    missing = []
    for c in commands():
        group, _, sub = c.name.partition(" ")
        if c.name not in named and not (sub and re.search(rf"`{group}\b[^|]*\b{sub}\b", rows)):
            missing.append(c.name)
    assert missing == [], f"docs/cli.md does not name: {missing}"


def test_every_exit_code_is_documented() -> None:
    codes = {exits.OK, exits.FAILED, exits.USAGE, exits.UNAVAILABLE, exits.INTERRUPTED}
    for code in codes:
        assert re.search(rf"^\| {code} \|", TEXT, re.M), f"exit code {code} not in docs/cli.md"
