"""A Kafka broker one client can be cut off from, on loopback only: the broker (the local
Apache jars, as ``streamplane infra`` runs them) has a second listener whose advertised
address is a TCP proxy run by the test. A client bootstrapped at the proxy learns the proxy as
the broker's address and talks only through it; :meth:`TcpProxy.cut` drops its connections
and refuses new ones (a network partition between that client and Kafka, while every other
process keeps its direct listener), :meth:`TcpProxy.heal` lets it in again."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from control_plane.tools.infra import kafka
from control_plane.tools.infra.config import kafka_version
from projections.errors import KafkaIOError
from projections.io.kafka import make_admin, started
from support.ports import free_ports

#: seconds the broker may take to answer after it was started
UP_WITHIN = 60.0


@dataclass
class TcpProxy:
    """``127.0.0.1:port`` forwarded to ``127.0.0.1:target`` while not cut."""

    port: int
    target: int
    _server: asyncio.Server | None = None
    _pipes: set[asyncio.StreamWriter] = field(default_factory=set)

    async def heal(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)

    async def cut(self) -> None:
        """Refuse new connections and break every open one."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for writer in list(self._pipes):
            writer.transport.abort()
        self._pipes.clear()
        if server is not None:
            await server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.transport.abort()
            return
        self._pipes |= {writer, up_writer}
        await asyncio.gather(
            self._pump(reader, up_writer), self._pump(up_reader, writer), return_exceptions=True
        )

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            self._pipes.discard(writer)
            writer.transport.abort()


@dataclass
class CutBroker:
    """``bootstrap``: the direct listener; ``proxied``: the one through ``proxy``."""

    bootstrap: str
    proxied: str
    proxy: TcpProxy


def _start(folder: Path) -> tuple[subprocess.Popen[bytes], str, int, int]:
    """Format and start the broker: (process, direct bootstrap, proxied port, behind port)."""
    libs = kafka.ensure_libs(kafka_version())
    direct, behind, controller, front = free_ports(4)
    settings = kafka.base_properties(replicas=1)
    settings.update({
        "node.id": 1,
        "controller.quorum.voters": f"1@127.0.0.1:{controller}",
        "log.dirs": str(folder / "data"),
        "listeners": f"PLAINTEXT://127.0.0.1:{direct},CUT://127.0.0.1:{behind},"
        f"CONTROLLER://127.0.0.1:{controller}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{direct},CUT://127.0.0.1:{front}",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CUT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "inter.broker.listener.name": "PLAINTEXT",
    })  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    properties = folder / "server.properties"
    properties.write_text(kafka.render_properties(settings))
    java = shutil.which("java")
    assert java, "java is needed for the Kafka jars"
    storage = [java, "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format"]
    storage += ["-t", kafka.new_cluster_id(), "-c", str(properties)]
    formatted = subprocess.run(storage, capture_output=True, text=True, check=False)
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr
    with (folder / "broker.log").open("wb") as log:
        proc = subprocess.Popen(
            [java, "-Xmx384m", "-cp", f"{libs}/*", "kafka.Kafka", str(properties)],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return proc, f"127.0.0.1:{direct}", front, behind


@contextlib.asynccontextmanager
async def cut_broker(folder: Path) -> AsyncIterator[CutBroker]:
    """A single-node KRaft broker with a proxied listener (see the module docstring)."""
    proc, direct, front, behind = await asyncio.to_thread(_start, folder)
    proxy = TcpProxy(front, behind)
    try:
        await _answers(direct, proc, folder / "broker.log")
        await proxy.heal()
        yield CutBroker(direct, f"127.0.0.1:{front}", proxy)
    finally:
        await proxy.cut()
        proc.kill()
        await asyncio.to_thread(proc.wait, 30)


async def _answers(bootstrap: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until the broker answers an admin client (its log's tail if it died)."""
    deadline = asyncio.get_running_loop().time() + UP_WITHIN
    while True:
        if proc.poll() is not None:
            tail = await asyncio.to_thread(log.read_text, errors="replace")
            raise AssertionError(f"the broker exited: {tail[-3000:]}")
        try:
            async with started(make_admin(bootstrap), kafka_timeout=5, what="probe"):
                return
        except KafkaIOError:
            assert asyncio.get_running_loop().time() < deadline, "the broker never answered"
            await asyncio.sleep(0.5)
