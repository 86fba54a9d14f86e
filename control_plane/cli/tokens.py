"""``streamplane api tokens create|list|revoke``: the API's bearer tokens.

The token file is ``--tokens-file`` or ``STREAMPLANE_API_TOKENS_FILE``. ``create`` prints
the new token once, alone on stdout (for ``TOKEN=$(streamplane api tokens create ...)``),
and nothing else ever shows it: the file keeps its SHA-256 (control_plane.api.tokens), the
log and stderr only its name. A running API sees a new or revoked token on its next request.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated

import typer

from control_plane.api.tokens import Scope, TokenFileError, create, read_entries, revoke
from control_plane.tools.exits import cli_app
from control_plane.tools.options import check_id


class ScopeName(enum.StrEnum):
    """The scopes by name, for the command line (``Scope`` is ordered by what it allows)."""

    read = "read"
    operate = "operate"
    admin = "admin"


tokens_app = cli_app(help="Create, list and revoke the API's bearer tokens.")

TokensFile = Annotated[
    Path | None,
    typer.Option(
        "--tokens-file", help="The token file (env STREAMPLANE_API_TOKENS_FILE), mode 0600."
    ),
]


def _file(tokens_file: Path | None) -> Path:
    """The token file from the option, else from the API's settings."""
    if tokens_file is not None:
        return tokens_file
    from control_plane.api.settings import ApiSettings

    path = ApiSettings().api_tokens_file
    if path is None:
        raise typer.BadParameter(
            "no token file: give --tokens-file or set STREAMPLANE_API_TOKENS_FILE",
            param_hint="--tokens-file",
        )
    return path


def _bad_file(exc: TokenFileError) -> typer.BadParameter:
    field, _, message = str(exc).partition(": ")
    hint = "--name" if field == "name" else "--tokens-file"
    return typer.BadParameter(message or str(exc), param_hint=hint)


@tokens_app.command("create")
def tokens_create(
    name: Annotated[
        str, typer.Option(callback=check_id, help="The token's name: the principal it acts as.")
    ],
    scope: Annotated[ScopeName, typer.Option(help="read, operate (includes read) or admin (all).")],
    tokens_file: TokensFile = None,
) -> None:
    """Add a token; print it once on stdout (it cannot be shown again)."""
    path = _file(tokens_file)
    try:
        token = create(path, name=name, scope=Scope[scope.value])
    except TokenFileError as exc:
        raise _bad_file(exc) from exc
    typer.echo(f"token {name!r} (scope {scope.value}) added to {path}; shown once:", err=True)
    typer.echo(token)


@tokens_app.command("list")
def tokens_list(tokens_file: TokensFile = None) -> None:
    """The tokens' names, scopes and creation times (never a token or its hash)."""
    path = _file(tokens_file)
    try:
        entries = read_entries(path)
    except TokenFileError as exc:
        raise _bad_file(exc) from exc
    for e in entries:
        typer.echo(f"{e.name}\t{e.scope.name}\t{e.created}")
    if not entries:
        typer.echo(f"no tokens in {path}", err=True)


@tokens_app.command("revoke")
def tokens_revoke(
    name: Annotated[str, typer.Argument(callback=check_id, help="The token's name.")],
    tokens_file: TokensFile = None,
) -> None:
    """Remove a token; a running API refuses it from its next request on."""
    path = _file(tokens_file)
    try:
        removed = revoke(path, name)
    except TokenFileError as exc:
        raise _bad_file(exc) from exc
    if not removed:
        raise typer.BadParameter(f"no token named {name!r} in {path}", param_hint="name")
    typer.echo(f"revoked {name!r}")


__all__ = ["tokens_app"]
