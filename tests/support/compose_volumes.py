"""What a compose container sees of its named volumes, without Docker: the files a one-shot
wrote into its mounts, read back through another service's mounts of the same volumes. The
compose tests use it to check that no container can read another role's secrets."""

from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any


def named_mounts(service: dict[str, Any], volumes: set[str]) -> dict[str, str]:
    """The service's mounts of named volumes, volume -> target (short or long syntax); bind
    mounts and anonymous volumes are left out."""
    out: dict[str, str] = {}
    for mount in service.get("volumes") or []:
        if isinstance(mount, dict):
            source, target = str(mount.get("source", "")), str(mount["target"])
        else:
            source, target, *_ = f"{mount}:".split(":")
        if source in volumes:
            out[source] = target
    return out


def visible(
    service: dict[str, Any], writer: dict[str, Any], root: Path, volumes: set[str]
) -> dict[str, str]:
    """Every file the service can see of the volumes ``writer`` fills, path in its container
    -> content, as ``writer`` left them under ``root`` (a directory standing for its ``/``)."""
    written = named_mounts(writer, volumes)
    seen: dict[str, str] = {}
    for volume, target in named_mounts(service, volumes).items():
        if volume not in written:
            continue  # not a volume of secrets (tokens, data)
        folder = root / PurePosixPath(written[volume]).relative_to("/")
        for path in folder.rglob("*"):
            if path.is_file():
                seen[f"{target}/{path.relative_to(folder)}"] = path.read_text(encoding="utf-8")
    return seen
