"""`python -m control_plane.tools.infra up|status|down`."""

from control_plane.tools.infra.cli import infra_app

if __name__ == "__main__":
    infra_app(prog_name="python -m control_plane.tools.infra")
