"""The API's bearer tokens: a file of hashes, never of tokens.

A token is 32 random bytes (``secrets.token_urlsafe``) behind the prefix ``spt_``, shown
once to whoever creates it. The file (``STREAMPLANE_API_TOKENS_FILE``, mode 0600) keeps,
per token, its name, its scope and the SHA-256 of the token::

    {"version": 1, "tokens": [{"name": "ci", "scope": "operate",
                               "sha256": "9f86...", "created": "2026-12-03T00:00:00Z"}]}

Why a fast hash and not argon2/scrypt: those exist to make guessing a *low-entropy*
password from its hash expensive. A 256-bit random token cannot be guessed whatever the
hash costs, so a slow hash would only add tens of milliseconds of CPU to every request (a
lever for anyone who can send requests with made-up tokens) and protect nothing. SHA-256
keeps the property that matters: the file never holds a usable token. A presented token is
compared with every stored hash by ``hmac.compare_digest`` (constant time, and no early
exit on a match), so timing tells nothing about which hash came closest.

The store reloads the file whenever it changes (size, mtime, inode), so ``streamplane api
tokens revoke`` takes effect on the next request of a running API.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import json
import os
import secrets
import stat
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

#: a token's prefix: it makes a leaked token recognisable to secret scanners
PREFIX = "spt_"
#: random bytes per token (256 bits)
TOKEN_BYTES = 32
FILE_VERSION = 1


class Scope(enum.IntEnum):
    """What a token may do; each scope includes the ones below it."""

    read = 1  # every GET: reads, time travel, alerts, the dashboard's data
    operate = 2  # streams add/remove, drain/undrain, rebalance, check
    admin = 3  # capacity, emergency recovery (and, later, enrolment)


class TokenFileError(Exception):
    """The token file cannot be used (unreadable, malformed, readable by others)."""

    retriable = False


@dataclass(frozen=True, slots=True)
class TokenEntry:
    """One token as the file keeps it: never the token itself."""

    name: str
    scope: Scope
    sha256: str
    created: str

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "scope": self.scope.name,
            "sha256": self.sha256,
            "created": self.created,
        }


def digest(token: str) -> str:
    """The hex SHA-256 of a token (what the file stores)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> str:
    """A fresh high-entropy token."""
    return PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def _entry(raw: Any, path: Path) -> TokenEntry:
    try:
        return TokenEntry(
            name=str(raw["name"]),
            scope=Scope[raw["scope"]],
            sha256=str(raw["sha256"]),
            created=str(raw.get("created", "")),
        )
    except (KeyError, TypeError) as exc:
        raise TokenFileError(f"api_tokens_file: {path}: a malformed entry ({exc!r})") from exc


def read_entries(path: Path) -> tuple[TokenEntry, ...]:
    """The entries of the file; a missing file holds none. Refuses a file that group or
    others may read or write: whoever can write it can add a token."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return ()
    except OSError as exc:
        raise TokenFileError(f"api_tokens_file: cannot read {path}: {exc.strerror}") from exc
    if stat.S_IMODE(mode) & 0o077:
        raise TokenFileError(
            f"api_tokens_file: {path} is mode {stat.S_IMODE(mode):o}; "
            f"it must be readable by its owner only (chmod 600 {path})"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        raw = doc["tokens"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise TokenFileError(f"api_tokens_file: {path} is not a token file ({exc})") from exc
    if not isinstance(raw, list):
        raise TokenFileError(f"api_tokens_file: {path}: 'tokens' is not a list")
    return tuple(_entry(item, path) for item in raw)


def write_entries(path: Path, entries: tuple[TokenEntry, ...]) -> None:
    """Replace the file atomically; the new file is created 0600 before anything is
    written to it, so it is never readable by others, not even for a moment."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    body = {"version": FILE_VERSION, "tokens": [e.to_json() for e in entries]}
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(body, out, indent=1)
            out.write("\n")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def create(path: Path, *, name: str, scope: Scope, now: datetime | None = None) -> str:
    """Add a token named ``name``; returns the token (the only time it exists in clear)."""
    entries = read_entries(path)
    if any(e.name == name for e in entries):
        raise TokenFileError(f"name: a token named {name!r} exists; revoke it first")
    token = new_token()
    created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_entries(path, (*entries, TokenEntry(name, scope, digest(token), created)))
    return token


def revoke(path: Path, name: str) -> bool:
    """Remove the token named ``name``; False when there was none."""
    entries = read_entries(path)
    kept = tuple(e for e in entries if e.name != name)
    if len(kept) == len(entries):
        return False
    write_entries(path, kept)
    return True


def match(entries: tuple[TokenEntry, ...], token: str) -> TokenEntry | None:
    """The entry whose hash is the token's, comparing with every entry in constant time."""
    presented = digest(token)
    found = None
    for entry in entries:
        if hmac.compare_digest(entry.sha256, presented):
            found = entry
    return found


class TokenStore:
    """The file's entries, read again whenever the file changes."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._key: tuple[int, int, int] | None = None
        self._entries: tuple[TokenEntry, ...] = ()
        self.current()  # a bad file fails at start, not at the first request

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def current(self) -> tuple[TokenEntry, ...]:
        """The entries now (a stat per call; a read only when the file changed)."""
        stamp = self._stamp()
        if stamp != self._key or stamp is None:
            self._entries = read_entries(self.path)
            self._key = stamp
        return self._entries

    def lookup(self, token: str) -> TokenEntry | None:
        return match(self.current(), token)
