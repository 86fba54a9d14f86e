"""`python -m control_plane.infra up|status|down`."""

from control_plane.infra.cli import infra_app

if __name__ == "__main__":
    infra_app(prog_name="python -m control_plane.infra")
