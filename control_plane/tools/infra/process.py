"""Process plumbing shared by the Kafka and PostgreSQL launchers: pids, ports, signals, tools."""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from control_plane.tools.infra.config import InfraError

# Children we spawned from this interpreter; kept so a killed one can be reaped (waited for)
# instead of lingering as a zombie that still "exists" for os.kill(pid, 0).
_children: dict[int, subprocess.Popen[bytes]] = {}


def log(message: str) -> None:
    """Progress goes to stderr so stdout stays eval-able for `infra status`."""
    print(f"[infra] {message}", file=sys.stderr, flush=True)


def port_open(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True when pid is a running (not zombie) process; reaps it first if it is our child."""
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        _children.pop(pid, None)
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user (PostgreSQL runs as postgres)
    stat = Path(f"/proc/{pid}/stat")
    with contextlib.suppress(OSError):
        # Field 3 is the state; a zombie (Z) or dead (X) process is gone for our purposes.
        return stat.read_text().rsplit(")", 1)[1].split()[0] not in {"Z", "X"}
    return True


def read_pid(pid_file: Path) -> int | None:
    """The pid recorded in pid_file when that process is still alive, else None."""
    try:
        pid = int(pid_file.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return pid if pid_alive(pid) else None


def spawn(cmd: list[str], log_file: Path, pid_file: Path, cwd: Path) -> int:
    """Start cmd detached (own session, survives this process) and record its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    _children[proc.pid] = proc
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def wait_for(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.2) -> None:
    """Poll check until it is true; raise InfraError naming `what` after timeout seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise InfraError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


def stop_pids(pids: list[int], grace: float = 30.0) -> None:
    """SIGTERM every pid, wait up to grace seconds in total, then SIGKILL the survivors."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(pid_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:
        if pid_alive(pid):
            log(f"pid {pid} ignored SIGTERM for {grace:.0f}s: SIGKILL")
            kill_pid(pid)


def kill_pid(pid: int) -> None:
    """SIGKILL pid and wait until it is gone (reaped if it is our child)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    child = _children.pop(pid, None)
    if child is not None:
        child.wait(timeout=10)
        return
    wait_for(lambda: not pid_alive(pid), 10, f"pid {pid} to exit")


def _auto_install_allowed() -> bool:
    # A fresh CI machine lacks the tools; root with apt-get can fix that unattended.
    # STREAMPLANE_INFRA_INSTALL=0 turns it off, =1 forces trying.
    setting = os.environ.get("STREAMPLANE_INFRA_INSTALL", "auto")
    if setting == "0":
        return False
    return setting == "1" or (os.geteuid() == 0 and shutil.which("apt-get") is not None)


def apt_install(packages: list[str]) -> None:
    """Install Debian packages (non-interactive); InfraError with the command to run if not."""
    command = f"apt-get update && apt-get install -y {' '.join(packages)}"
    if not _auto_install_allowed():
        raise InfraError(f"missing {', '.join(packages)}: install with `{command}` (as root)")
    log(f"installing {' '.join(packages)} with apt-get (STREAMPLANE_INFRA_INSTALL=0 disables)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for args in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends"]):
        cmd = args + packages if args[1] == "install" else args
        result = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise InfraError(f"`{' '.join(cmd)}` failed:\n{result.stderr[-2000:]}")


def require_tool(name: str, package: str) -> str:
    """Path of executable `name`, installing Debian `package` when allowed and missing."""
    path = shutil.which(name)
    if path is None:
        apt_install([package])
        path = shutil.which(name)
    if path is None:
        raise InfraError(f"`{name}` not found on PATH even after installing {package}")
    return path


@contextlib.contextmanager
def locked(lock_file: Path) -> Iterator[None]:
    """Serialise up/down across processes (two pytest sessions, a shell and a test run)."""
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
