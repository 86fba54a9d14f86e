"""``streamplane``: the command line (mounts every process and tool)."""

from control_plane.cli.main import app, main

__all__ = ["app", "main"]
