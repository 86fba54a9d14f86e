"""The demo's dashboard: the dashboard served alone as a child process, and its URL.

``streamplane demo`` runs no PostgreSQL, so there is no read model behind ``streamplane
api``; the dashboard needs none (it is fed from the control log), and
``python -m control_plane.api.dashboard`` serves it alone. The child prints
``dashboard: URL`` once it listens, with the real port: the demo asks for its configured
port, or for any free one when that is taken (another demo, another server).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import socket
import sys

from control_plane.tools.harness import Child, Children

#: the dashboard served alone (control_plane.api.dashboard.server), as a child process
DASHBOARD = (sys.executable, "-m", "control_plane.api.dashboard")
#: the demo's dashboard listens on loopback only, and reads without a token
HOST = "127.0.0.1"
#: the token file the demo's dashboard is given (in the demo's log directory): it holds no
#: token, so only the anonymous reads it turns on get through, and the dashboard says so
TOKENS_FILE = "api-tokens.json"
_URL = re.compile(r"^dashboard: (\S+)$", re.M)


def port_free(host: str, port: int) -> bool:
    """Whether ``port`` can be listened on now (0 always can)."""
    if port == 0:
        return True
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def start(children: Children, port: int, host: str = HOST) -> Child:
    """Start the dashboard on ``host:port``, or on any free port when that one is taken."""
    chosen = port if port_free(host, port) else 0
    args = [*DASHBOARD, "--host", host, "--port", str(chosen)]
    env = {
        "STREAMPLANE_API_TOKENS_FILE": str(children.log_dir / TOKENS_FILE),
        "STREAMPLANE_API_ANONYMOUS_READS": "true",
    }
    return children.spawn("dashboard", "dashboard", args, env)


async def url_of(child: Child, within: float) -> str | None:
    """The URL the dashboard printed once listening; None if it exited first or printed
    none within ``within`` seconds (its log says why)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(within):
            while (found := _URL.search(child.log_text())) is None:
                if not child.alive:
                    return None
                await asyncio.sleep(0.2)
            return found.group(1)
    return None
