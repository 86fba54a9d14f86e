"""Who may call the API: bearer tokens with a scope (:mod:`.tokens`), checked by one
FastAPI dependency per scope.

Three modes, chosen once at start by :func:`authenticator`:

- ``STREAMPLANE_API_TOKENS_FILE`` set: every request needs a token of the route's scope
  (401 without one or with an unknown one, 403 with too small a scope), except reads when
  ``STREAMPLANE_API_ANONYMOUS_READS=true``.
- no token file and a loopback address: **open**, every request is the principal
  ``anonymous`` (what a developer's laptop, the tests and the demo had before tokens); a
  WARNING says so at start.
- no token file and any other address: refused at start (:class:`AuthConfigError`): a
  network-reachable API that anyone may write to is never a default.

A browser cannot put a header on an ``EventSource``, so the dashboard's GETs also accept
the token in the cookie ``streamplane_token`` (set by the page from ``#token=...``). Only
GETs: a cookie that a browser attaches by itself must never authorise a write (CSRF).
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from control_plane.api.errors import ApiError, ErrorBody
from control_plane.api.tokens import Scope, TokenFileError, TokenStore

log = logging.getLogger("streamplane.api")

#: the principal of a request that presented no token where none is needed
ANONYMOUS = "anonymous"
COOKIE = "streamplane_token"
REALM = 'Bearer realm="streamplane"'


class AuthConfigError(ValueError):
    """The API cannot start with these authentication settings (the message names the
    setting); the CLI makes it a usage error (exit 2)."""

    retriable = False


class UnauthorizedError(ApiError):
    status = 401
    error = "unauthorized"


class ForbiddenError(ApiError):
    status = 403
    error = "forbidden"


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: a token's name (or ``anonymous``) and what it may do."""

    name: str
    scope: Scope


@dataclass
class Authenticator:
    """The mode of the module docstring; ``store`` is None in open mode."""

    store: TokenStore | None
    anonymous_reads: bool
    host: str = "127.0.0.1"

    def announce(self) -> None:
        """Say the mode in the log; called once the server starts (not when the app is
        made: a server that cannot even listen says only that)."""
        if self.store is None:
            log.warning(
                "API authentication is OFF: no STREAMPLANE_API_TOKENS_FILE; anyone who "
                "reaches %s may read and write (acceptable on loopback only)",
                self.host,
            )
            return
        count = len(self.store.current())
        log.info("API authentication: bearer tokens (%d in the token file)", count)
        if self.anonymous_reads:
            log.warning(
                "API anonymous reads are ON (STREAMPLANE_API_ANONYMOUS_READS): anyone who "
                "reaches %s may read without a token; writes still need one",
                self.host,
            )

    def principal(self, token: str | None, needs: Scope) -> Principal:
        """The caller, or the 401/403 of the module docstring."""
        if self.store is None:
            return Principal(ANONYMOUS, Scope.admin)
        if token is None:
            if needs is Scope.read and self.anonymous_reads:
                return Principal(ANONYMOUS, Scope.read)
            raise UnauthorizedError(
                f"this needs a bearer token with the {needs.name!r} scope "
                "(Authorization: Bearer <token>)",
                field="Authorization",
                headers={"WWW-Authenticate": REALM},
            )
        try:
            entry = self.store.lookup(token)
        except TokenFileError as exc:  # fail closed, and say why in the API's log
            log.error("API tokens: %s", exc)
            raise ApiError("the API cannot read its token file (logged)") from exc
        if entry is None:
            raise UnauthorizedError(
                "unknown or revoked token",
                field="Authorization",
                headers={"WWW-Authenticate": f'{REALM}, error="invalid_token"'},
            )
        if entry.scope < needs:
            raise ForbiddenError(
                f"token {entry.name!r} has the {entry.scope.name!r} scope; "
                f"this needs {needs.name!r}",
                field="Authorization",
                headers={
                    "WWW-Authenticate": f'{REALM}, error="insufficient_scope", scope="{needs.name}"'
                },
            )
        return Principal(entry.name, entry.scope)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def authenticator(tokens_file: Path | None, anonymous_reads: bool, host: str) -> Authenticator:
    """The mode for these settings (module docstring); :meth:`Authenticator.announce`
    logs it."""
    if tokens_file is None:
        if not _loopback(host):
            raise AuthConfigError(
                f"api_tokens_file: not set, and the API would listen on {host}: create "
                "tokens (`streamplane api tokens create`) and set STREAMPLANE_API_TOKENS_FILE"
            )
        return Authenticator(None, anonymous_reads=True, host=host)
    try:
        store = TokenStore(tokens_file)
    except TokenFileError as exc:
        raise AuthConfigError(str(exc)) from exc
    return Authenticator(store, anonymous_reads, host)


_bearer = HTTPBearer(auto_error=False, description="a token from `streamplane api tokens create`")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def requires(scope: Scope) -> Callable[..., Any]:
    """A dependency that answers 401/403 unless the request may use ``scope``; it returns
    the :class:`Principal` and declares the bearer scheme in the OpenAPI document."""

    def check(request: Request, credentials: Bearer) -> Principal:
        auth: Authenticator = request.app.state.auth
        token = credentials.credentials if credentials is not None else None
        if token is None and request.method == "GET":
            token = request.cookies.get(COOKIE)
        principal = auth.principal(token, scope)
        request.state.principal = principal
        return principal

    check.__name__ = f"requires_{scope.name}"
    return check


#: the documented answers of a route behind a token
AUTH_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "no token, or an unknown or revoked one"},
    403: {"model": ErrorBody, "description": "the token's scope is too small for this"},
}
ReadAccess = Depends(requires(Scope.read))
OperateAccess = requires(Scope.operate)
AdminAccess = requires(Scope.admin)
