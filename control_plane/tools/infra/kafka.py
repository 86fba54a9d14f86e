"""Kafka in KRaft mode from the Apache jars on Maven Central, run by the machine's Java."""

from __future__ import annotations

import asyncio
import base64
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Coroutine, Mapping
from pathlib import Path
from typing import Any

from control_plane.tools.infra import process, secure
from control_plane.tools.infra.config import (
    KAFKA_LOG4J,
    KAFKA_POM,
    InfraError,
    KafkaCluster,
    KafkaNode,
    cache_dir,
    kafka_version,
)
from kafka_auth import KafkaAccess

START_TIMEOUT = float(os.environ.get("STREAMPLANE_KAFKA_START_TIMEOUT", "120"))


def ensure_libs(version: str) -> Path:
    """Directory holding every jar of Kafka `version`, fetched with Maven on first use."""
    target = cache_dir() / f"kafka-{version}"
    libs = target / "libs"
    if (target / ".complete").exists():
        return libs
    mvn = process.require_tool("mvn", "maven")
    staging = target / "libs.partial"
    shutil.rmtree(staging, ignore_errors=True)
    cmd = [mvn, "-q", "-B", "-f", str(KAFKA_POM), "dependency:copy-dependencies"]
    cmd += [f"-Dkafka.version={version}", f"-DoutputDirectory={staging}"]
    if repo := os.environ.get("STREAMPLANE_M2_REPO"):
        cmd.append(f"-Dmaven.repo.local={repo}")
    process.log(f"fetching Kafka {version} jars with Maven into {libs}")
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        output = (result.stdout + result.stderr)[-3000:]
        raise InfraError(f"Maven could not fetch Kafka {version}:\n{output}")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    (target / ".complete").write_text(version + "\n")
    return libs


def _java() -> str:
    return process.require_tool("java", "openjdk-17-jre-headless")


def base_properties(*, replicas: int) -> dict[str, object]:
    """The settings of every broker the project runs (local jars and compose's secure
    mode), apart from its listeners: RF and min ISR follow the cluster size."""
    rf, min_isr = (1, 1) if replicas == 1 else (3, 2)
    return {
        "process.roles": "broker,controller",
        "controller.listener.names": "CONTROLLER",
        "num.partitions": 1,
        # Topics come only from ensure_topics, with the contract's settings: an auto-created
        # control log would get one partition and seven days' retention.
        "auto.create.topics.enable": "false",
        "default.replication.factor": rf,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": rf,
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "transaction.state.log.num.partitions": 10,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        # Tests join groups constantly; the default 3 s delay would slow every one of them.
        "group.initial.rebalance.delay.ms": 0,
        "log.segment.bytes": 16 * 1024 * 1024,
        "log.retention.check.interval.ms": 60_000,
        "num.network.threads": 2,
        "num.io.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
        "unclean.leader.election.enable": "false",
        # A crashed node is fenced (and its partitions fail over) after this long without
        # a heartbeat; 9 s by default, shorter keeps the chaos tests quick.
        "broker.session.timeout.ms": 6000,
        "broker.heartbeat.interval.ms": 1000,
    }


def render_properties(settings: Mapping[str, object]) -> str:
    return "".join(f"{key}={value}\n" for key, value in settings.items())


def _properties(cluster: KafkaCluster, node: KafkaNode) -> str:
    """server.properties of one combined node; RF and min ISR follow the cluster size."""
    voters = ",".join(f"{n.node_id}@127.0.0.1:{n.controller_port}" for n in cluster.nodes)
    settings = base_properties(replicas=cluster.size)
    settings.update(
        {
            "node.id": node.node_id,
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},"
            f"CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": node.data_dir,
        }
    )
    if cluster.secure:
        settings.update(secure.broker_properties(cluster, node))
    return render_properties(settings)


def _marker(cluster: KafkaCluster, node: KafkaNode) -> str:
    # Put on the java command line so a recycled pid is never mistaken for our broker.
    return f"-Dstreamplane.node={cluster.home}/{node.node_id}"


def node_pid(cluster: KafkaCluster, node: KafkaNode) -> int | None:
    """Pid of the node's broker process when it is running, else None."""
    pid = process.read_pid(node.pid_file)
    if pid is None:
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return pid  # no /proc (not Linux): trust the pid file
    return pid if _marker(cluster, node) in cmdline.split("\0") else None


def _reset_if_other_version(cluster: KafkaCluster, version: str) -> None:
    # A data dir formatted by a newer Kafka cannot be opened by an older one: start afresh.
    stamp = cluster.home / "version"
    if stamp.exists() and stamp.read_text().strip() != version:
        process.log(f"{cluster.name} was formatted by Kafka {stamp.read_text().strip()}: wiping")
        for node in cluster.nodes:
            shutil.rmtree(node.data_dir, ignore_errors=True)
        (cluster.home / "cluster.id").unlink(missing_ok=True)
    cluster.home.mkdir(parents=True, exist_ok=True)
    stamp.write_text(version + "\n")


def _cluster_id(cluster: KafkaCluster) -> str:
    path = cluster.home / "cluster.id"
    if path.exists():
        return path.read_text().strip()
    cid = new_cluster_id()
    path.write_text(cid + "\n")
    return cid


def new_cluster_id() -> str:
    """A KRaft cluster id as ``kafka-storage random-uuid`` makes one."""
    while True:  # Kafka's own generator also skips ids that look like command-line flags
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):
            return cid


def _format(cluster: KafkaCluster, node: KafkaNode, libs: Path) -> None:
    if (node.data_dir / "meta.properties").exists():
        return
    args = ["-Xmx256m", "-cp", f"{libs}/*", "kafka.tools.StorageTool", "format"]
    args += ["-t", _cluster_id(cluster), "-c", str(node.properties), "--ignore-formatted"]
    argfile = node.home / "format.args"
    if cluster.secure:  # the SCRAM users' passwords go through a 0600 file, not argv
        secure.write_argfile(argfile, [*args, *secure.format_arguments(cluster)])
        args = [f"@{argfile}"]
    try:
        result = subprocess.run([_java(), *args], capture_output=True, text=True, check=False)
    finally:
        argfile.unlink(missing_ok=True)
    if result.returncode != 0:
        raise InfraError(f"formatting Kafka storage failed:\n{result.stdout}{result.stderr}")


def _check_ports_free(node: KafkaNode) -> None:
    for port, env in ((node.port, "PORT"), (node.controller_port, "CONTROLLER_PORT")):
        if process.port_open(port):
            raise InfraError(
                f"port {port} is taken by a process that is not streamplane's Kafka node "
                f"{node.node_id}; stop it or choose other ports (STREAMPLANE_KAFKA_{env}, "
                "STREAMPLANE_KAFKA3_BASE_PORT, see docs/infra.md)"
            )


def start_node(cluster: KafkaCluster, node: KafkaNode, libs: Path) -> None:
    """Write the node's config, format its storage on first use and launch it detached."""
    if node_pid(cluster, node) is not None:
        return
    _check_ports_free(node)
    node.log_dir.mkdir(parents=True, exist_ok=True)
    node.properties.touch(mode=0o600)  # a secure node's holds the admin's password
    node.properties.chmod(0o600)
    node.properties.write_text(_properties(cluster, node))
    _format(cluster, node, libs)
    heap = os.environ.get("STREAMPLANE_KAFKA_HEAP", "512m")
    cmd = [_java(), "-Xms128m", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
    cmd += ["-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true", _marker(cluster, node)]
    cmd += [f"-Dlog4j2.configurationFile={KAFKA_LOG4J}", f"-Dkafka.logs.dir={node.log_dir}"]
    cmd += ["-cp", f"{libs}/*", "kafka.Kafka", str(node.properties)]
    pid = process.spawn(cmd, node.log_dir / "stdout.log", node.pid_file, cwd=node.home)
    process.log(f"started {cluster.name} node {node.node_id} (pid {pid}) on {node.address}")


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run a coroutine to completion, also when called from inside a running event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box.get("value")


async def _live_broker_ids(access: KafkaAccess) -> set[int]:
    from aiokafka.client import AIOKafkaClient  # heavy import, only needed here

    client = AIOKafkaClient(**access.client_kwargs(), request_timeout_ms=5000)
    try:
        async with asyncio.timeout(10):
            await client.bootstrap()
            metadata = await client.fetch_all_metadata()
        return {broker.nodeId for broker in metadata.brokers()}
    finally:
        await client.close()


def live_broker_ids(cluster: KafkaCluster) -> set[int]:
    """Node ids the cluster's metadata reports as live brokers (empty when unreachable)."""
    # Bootstrap only from nodes that accept TCP: aiokafka logs an error for every refusal.
    listening = [node.address for node in cluster.nodes if process.port_open(node.port)]
    if not listening:
        return set()
    bootstrap = ",".join(listening)
    access = KafkaAccess(bootstrap)
    if cluster.secure:
        access = secure.access(cluster, secure.ADMIN)._replace(bootstrap=bootstrap)
    try:
        return set(run_async(_live_broker_ids(access)))
    except Exception:
        return set()


def wait_ready(cluster: KafkaCluster, node_ids: set[int], timeout: float = START_TIMEOUT) -> None:
    """Wait until every node in node_ids is a live broker in the cluster metadata."""
    nodes = [node for node in cluster.nodes if node.node_id in node_ids]

    def ready() -> bool:
        for node in nodes:
            # The pid file alone: just after exec, /proc/<pid>/cmdline may not show the marker.
            if process.read_pid(node.pid_file) is None:
                raise InfraError(f"Kafka node {node.node_id} exited; see {node.log_dir}")
        if not all(process.port_open(node.port) for node in nodes):
            return False
        return node_ids <= live_broker_ids(cluster)

    what = f"{cluster.name} brokers {sorted(node_ids)} (logs: {cluster.home}/node-*/logs)"
    process.wait_for(ready, timeout, what, interval=0.5)


def cluster_up(cluster: KafkaCluster) -> None:
    """Start every node of the cluster that is not running and wait until all serve."""
    version = kafka_version()
    if all(node_pid(cluster, n) is not None for n in cluster.nodes):
        if {n.node_id for n in cluster.nodes} <= live_broker_ids(cluster):
            return
    elif not any(node_pid(cluster, n) is not None for n in cluster.nodes):
        _reset_if_other_version(cluster, version)
    libs = ensure_libs(version)
    if cluster.secure:
        secure.ensure_credentials(cluster)
    for node in cluster.nodes:
        start_node(cluster, node, libs)
    wait_ready(cluster, {n.node_id for n in cluster.nodes})


def cluster_down(cluster: KafkaCluster, purge: bool = False) -> None:
    """Stop every node (SIGTERM, then SIGKILL after a grace period); purge deletes its data."""
    pids = [pid for n in cluster.nodes if (pid := node_pid(cluster, n)) is not None]
    if pids:
        process.log(f"stopping {cluster.name} (pids {pids})")
        process.stop_pids(pids)
    for node in cluster.nodes:
        node.pid_file.unlink(missing_ok=True)
    if purge:
        shutil.rmtree(cluster.home, ignore_errors=True)


def kill_node(cluster: KafkaCluster, node_id: int) -> None:
    """SIGKILL one node: a crash, no controlled shutdown."""
    node = cluster.node(node_id)
    pid = node_pid(cluster, node)
    if pid is not None:
        process.log(f"SIGKILL {cluster.name} node {node_id} (pid {pid})")
        process.kill_pid(pid)
    node.pid_file.unlink(missing_ok=True)


def restart_node(cluster: KafkaCluster, node_id: int) -> None:
    """Start one (killed or stopped) node again and wait until it is a live broker."""
    node = cluster.node(node_id)
    start_node(cluster, node, ensure_libs(kafka_version()))
    wait_ready(cluster, {node_id})
