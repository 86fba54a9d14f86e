"""``python -m worker_agent ...``: the worker CLI without the ``streamplane`` entry point."""

import typer

from worker_agent.cli import worker

app = typer.Typer(add_completion=False)
app.command()(worker)

if __name__ == "__main__":
    app()
