"""Decision goldens from recorded runs: ``python -m control_plane.tools.decisions ...``.

    summary RECORDING                  one line per busy cycle, per term: to pick a window
    golden RECORDING OUT [--term 1] [--first N] [--last M] [--note TEXT]
                                       keep one term's cycles N..M as a golden file, then
                                       check that it replays
    check FILE...                      replay each file through decide; exit 1 on divergence
    regen FILE...                      rewrite the expected outputs with decide as it is now
                                       (after an intended change: review ``git diff``)

A recording comes from an orchestrator run with ``STREAMPLANE_RECORD_DECISIONS=<path>``;
docs/orchestrator.md ("Decision goldens") tells the whole story.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from control_plane.tools import decision_replay as dr
from control_plane.tools.exits import cli_app

app = cli_app(help=__doc__.split("\n")[0] if __doc__ else None)

Files = Annotated[list[Path], typer.Argument(exists=True, dir_okay=False)]


@app.command()
def summary(recording: Annotated[Path, typer.Argument(exists=True, dir_okay=False)]) -> None:
    """One line per cycle that heard, was told or decided something, per term."""
    for k, segment in enumerate(dr.read(recording), 1):
        end = segment.end["reason"] if segment.end else "running"
        typer.echo(f"term {k}: cycles {len(segment.cycles)} ({end})")
        for row in dr.summary(segment):
            typer.echo(row)


@app.command()
def golden(
    recording: Annotated[Path, typer.Argument(exists=True, dir_okay=False)],
    out: Path,
    term: Annotated[int, typer.Option(min=1, help="which leader term (1 = the first)")] = 1,
    first: Annotated[int, typer.Option(min=1, help="first cycle kept")] = 1,
    last: Annotated[int | None, typer.Option(help="last cycle kept (default: the end)")] = None,
    note: Annotated[list[str] | None, typer.Option(help="a line for reviewers")] = None,
) -> None:
    """Keep one term's cycles FIRST..LAST of a recording as a golden file."""
    segments = dr.read(recording)
    if term > len(segments):
        raise typer.BadParameter(f"the recording has {len(segments)} term(s)", param_hint="--term")
    segment = dr.trim(segments[term - 1], first, last if last is not None else 1 << 62)
    if note:
        segment.notes = [{"kind": "note", "note": text} for text in note]
    dr.write(out, [segment])
    size = out.stat().st_size
    typer.echo(f"{out}: {len(segment.cycles)} cycles, {size} bytes")
    _check_or_exit(out)


@app.command()
def check(files: Files) -> None:
    """Replay each file through ``decide``; exit 1 at the first divergence."""
    failed = [f for f in files if not _check(f)]
    if failed:
        raise typer.Exit(1)


@app.command()
def regen(files: Files) -> None:
    """Rewrite the expected outputs with ``decide`` as it is now; review ``git diff``."""
    for f in files:
        dr.write(f, [dr.regenerate(s) for s in dr.read(f)])
        typer.echo(f"{f}: regenerated")


def _check(path: Path) -> bool:
    for k, segment in enumerate(dr.read(path), 1):
        divergence = dr.check(segment)
        if divergence is not None:
            typer.echo(f"{path} (term {k}): {divergence}", err=True)
            return False
    typer.echo(f"{path}: replays identically")
    return True


def _check_or_exit(path: Path) -> None:
    if not _check(path):
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
