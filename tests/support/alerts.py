"""For the alert tests: a real ``streamplane monitor`` beside a test cluster, what it wrote to
``<prefix>.alerts`` (read back with the reader every other client uses), and a loopback HTTP
server that records webhook deliveries."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import urllib.request
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from control_plane.tools.harness import CLI
from events.alerts import AlertFired, AlertMessage, AlertResolved
from projections.io.alerts import AlertLog
from support.cluster import Cluster, Proc

#: a monitor that judges fast, for tests: the windows themselves are set by each test
FAST_MONITOR = {
    "STREAMPLANE_MONITOR_INTERVAL": "0.5",
    "STREAMPLANE_ALERT_RESOLVE_AFTER": "1",
    "STREAMPLANE_ALERT_WARMUP": "4",
}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def monitor_signal(port: int, name: str) -> float | str:
    """The monitor's last sample of signal ``name`` from its ``/metrics`` on ``port``, or
    why there is none (for :meth:`Cluster.wait_until` messages)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            text = answer.read().decode()
    except OSError as exc:
        return f"no metrics yet: {exc}"
    prefix = f'streamplane_monitor_signal{{signal="{name}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return f"no {name} sample yet"


def start_monitor(c: Cluster, name: str = "monitor", **env: str) -> Proc:
    """``streamplane monitor`` as a child of the cluster (``env``: STREAMPLANE_* values)."""
    return c.children.spawn(name, "monitor", [*CLI, "monitor"], {**FAST_MONITOR, **env})


@dataclass
class AlertsSeen:
    """Every record of ``<prefix>.alerts``, in order, while :meth:`follow` runs."""

    records: list[AlertMessage] = field(default_factory=list)

    def of(self, key: str) -> list[AlertMessage]:
        return [r for r in self.records if r.key == key]

    def fired(self, key: str) -> list[AlertFired]:
        return [r for r in self.of(key) if isinstance(r, AlertFired)]

    def resolved(self, key: str) -> list[AlertResolved]:
        return [r for r in self.of(key) if isinstance(r, AlertResolved)]

    def status(self, key: str) -> str:
        """``firing``, ``resolved`` or ``never`` (what ``key``'s latest record says)."""
        records = self.of(key)
        if not records:
            return "never"
        return "firing" if isinstance(records[-1], AlertFired) else "resolved"

    def keys(self) -> set[str]:
        return {r.key for r in self.records}


@contextlib.asynccontextmanager
async def watching_alerts(c: Cluster) -> AsyncIterator[AlertsSeen]:
    """Follow ``<prefix>.alerts`` from its beginning in a task while the block runs."""
    seen = AlertsSeen()

    async def follow() -> None:
        async with AlertLog(c.bootstrap, c.topics, kafka_timeout=30) as log:
            while True:
                seen.records += await log.poll(timeout_ms=200)

    task = asyncio.create_task(follow(), name="alerts watcher")
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class Delivery:
    path: str
    content_type: str
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    server: _Recorder

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        status = self.server.answer()
        if status < 300:
            self.server.deliveries.append(
                Delivery(self.path, self.headers.get("Content-Type", ""), body)
            )
            self.server.delivered.set()
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class _Recorder(ThreadingHTTPServer):
    def __init__(self, answers: list[int]) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.deliveries: list[Delivery] = []
        #: set at the first delivery
        self.delivered = threading.Event()
        self.requests = 0
        self._answers = answers
        self._lock = threading.Lock()

    def answer(self) -> int:
        """The next scripted status (then 200 for ever)."""
        with self._lock:
            self.requests += 1
            return self._answers.pop(0) if self._answers else 200

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}/hooks/T000/secret-token"


@contextlib.contextmanager
def webhook_server(answers: list[int] | None = None) -> Iterator[_Recorder]:
    """A loopback HTTP server recording the POSTs it answers 2xx; ``answers`` scripts the
    first statuses (e.g. ``[500, 500]``: two failures, then success)."""
    server = _Recorder(list(answers or []))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
