"""Every ``streamplane`` subcommand and its parameters, read from the Typer app itself, so
that the CLI tests cover a command the day it is mounted (tests/unit/test_cli_errors.py,
tests/integration/test_cli_unreachable.py).

A command's parameters are sorted into kinds that say which bad value to give it and which
good one fills it when another parameter is under test.
"""

from __future__ import annotations

import socket
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import typer
from typer.testing import CliRunner

from control_plane.cli import app

#: a value that is wrong for each kind (flag, text and list have none to give)
BAD = {
    "int": "not-a-number",
    "float": "not-a-number",
    "choice": "not-a-choice",
    "existing_path": "/nonexistent/streamplane/file",
    "id": "bad/id",
    "time": "yesterday",
}
#: options that take an ISO 8601 time (``--at``, a window's ``--since`` / ``--until``)
TIME_OPTIONS = frozenset({"at", "since", "until"})


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Param:
    name: str
    opts: tuple[str, ...]  # () for an argument
    kind: str  # int, float, choice, existing_path, id, flag, text, list
    required: bool

    @property
    def hint(self) -> str:
        """How the ``error:`` line names it: the long option, or the argument's name."""
        return self.opts[0] if self.opts else self.name


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    params: tuple[Param, ...]

    @property
    def name(self) -> str:
        return " ".join(self.path)

    def has(self, name: str) -> bool:
        return any(p.name == name for p in self.params)

    @property
    def is_process(self) -> bool:
        """A long-running process (it waits for Kafka with back-off, by design): it takes
        ``--log-format``."""
        return self.has("log_format")


def _unwrap(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return _unwrap(args[0]) if len(args) == 1 else annotation
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    return annotation


def _kind(param: Any) -> str:
    descriptor = param.type_descriptor  # typer 0.29: the parameter's annotation and info
    annotation = _unwrap(descriptor.annotation)
    if getattr(param, "is_flag", False):
        return "flag"
    if typing.get_origin(annotation) in (list, tuple):
        return "list"
    if typing.get_origin(annotation) is Literal:
        return "choice"
    if annotation is bool:
        return "flag"
    if annotation in (int, float):
        return annotation.__name__  # type: ignore[no-any-return]
    if annotation is Path:
        return "existing_path" if descriptor.parameter_info.exists else "text"
    if annotation is str and param.name.endswith("_id"):
        return "id"
    if annotation is str and param.name in TIME_OPTIONS:
        return "time"
    return "text"


def _params(command: Any) -> tuple[Param, ...]:
    out = []
    for p in command.params:
        if p.name == "help":
            continue
        opts = (
            tuple(o for o in p.opts if o.startswith("--")) if p.param_type_name == "option" else ()
        )
        out.append(Param(p.name, opts, _kind(p), bool(p.required)))
    return tuple(out)


def commands() -> list[Command]:
    """Every leaf command of ``streamplane``, in the app's order, and every group that runs
    by itself too (``streamplane api`` serves; ``streamplane api tokens ...`` manages)."""
    root = typer.main.get_command(app)

    def walk(group: Any, path: tuple[str, ...]) -> Iterator[Command]:
        for name, sub in group.commands.items():
            if hasattr(sub, "commands"):
                if sub.invoke_without_command:
                    yield Command((*path, name), _params(sub))
                yield from walk(sub, (*path, name))
            else:
                yield Command((*path, name), _params(sub))

    return list(walk(root, ()))


def good_value(param: Param, tmp: Path) -> str:
    """A value the parser accepts for ``param`` (for the parameters not under test)."""
    if param.name == "public_key":  # instances enroll: a real key, or it is a usage error
        good = tmp / "good.key.pub"
        good.write_text("A" * 43 + "=\n")
        return str(good)
    if param.name == "credentials":  # infra grant: a directory holding admin.password
        folder = tmp / "credentials"
        folder.mkdir(exist_ok=True)
        (folder / "admin.password").write_text("not-a-real-password\n")
        return str(folder)
    if param.kind == "existing_path":
        existing = tmp / "existing.jsonl"
        existing.touch()
        return str(existing)
    good = {"int": "1", "float": "1", "id": "s1", "time": "2026-01-01T00:00:00Z"}
    return good.get(param.kind, "s1")


def command_line(command: Command, tmp: Path, override: tuple[str, str] | None = None) -> list[str]:
    """``command`` with good values for its required parameters and, with ``override``
    (a parameter's name and a value), that value for that parameter."""
    args = list(command.path)
    for p in command.params:
        if override is not None and p.name == override[0]:
            value = override[1]
        elif p.required:
            value = good_value(p, tmp)
        else:
            continue
        args += [p.opts[0], value] if p.opts else [value]
    return args


def run(args: list[str]) -> tuple[int, str, str]:
    """Run ``streamplane ARGS`` in this process: (exit code, stdout, stderr)."""
    result = CliRunner().invoke(app, args)
    return result.exit_code, result.stdout, result.stderr


def one_error_line(stderr: str) -> str:
    """The single ``error:`` line of ``stderr`` (asserting that it is all there is)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{stderr}"
    assert lines[0].startswith("error: "), lines[0]
    assert "Traceback" not in stderr
    return lines[0]
