"""Errors of the HTTP API and the ONE JSON shape every 4xx/5xx answer has.

The tree::

    ApiError                  root; ``status`` and ``error`` (the machine-readable code)
     +-- BadRequestError      400 ``bad_request``: a parameter or the body is wrong (``field``)
     +-- UnauthorizedError    401 ``unauthorized``: no token, or an unknown one (auth.py)
     +-- ForbiddenError       403 ``forbidden``: the token's scope is too small (auth.py)
     +-- NotFoundError        404 ``not_found``: no such stream/instance (as of ``as_of_seq``)
     +-- RejectedError        409 ``rejected``: the orchestrator refused the command (``reason``)
     +-- NoAnswerError        504 ``no_answer``: no orchestrator answered within the wait

Everything else is mapped here too, so a client parses one shape whatever went wrong:

==============================================  =====  ==================================
FastAPI's request validation                    400    ``bad_request`` naming the field
an unknown route / a method the route lacks     404 /  ``not_found`` /
                                                405    ``method_not_allowed``
the orchestrator refused the command            409    ``rejected`` with its ``reason``
no orchestrator answered within the wait        504    ``no_answer`` with the ``command_id``
the request took longer than its bound          504    ``timeout``
PostgreSQL or Kafka unreachable (retriable),    503    ``unavailable``
or not set up (no read-model tables, no topic)
anything else                                   500    ``internal`` (logged, no detail out)
==============================================  =====  ==================================
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from projections.errors import ProjectionError, UnknownTopicError

log = logging.getLogger("streamplane.api")

#: the header every read (and every error that knows it) carries: the control-log seq
SEQ_HEADER = "X-Streamplane-Seq"
#: how much of a rejected input value an error message quotes
QUOTE_MAX = 80


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of the API."""

    model_config = ConfigDict(extra="forbid")

    error: str = Field(description="machine-readable code: bad_request, not_found, ...")
    message: str = Field(description="what went wrong, for a person")
    field: str | None = Field(default=None, description="the parameter or body field at fault")
    reason: str | None = Field(default=None, description="the orchestrator's rejection reason")
    command_id: str | None = Field(default=None, description="the command this is about")
    as_of_seq: int | None = Field(default=None, description="the control-log seq, when known")


class ApiError(Exception):
    """Root of the API's own errors."""

    status = 500
    error = "internal"

    def __init__(
        self,
        message: str,
        *,
        field: str | None = None,
        seq: int | None = None,
        reason: str | None = None,
        command_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.headers = headers or {}
        self.message = message
        self.field = field
        self.seq = seq
        self.reason = reason
        self.command_id = command_id


class BadRequestError(ApiError):
    status = 400
    error = "bad_request"


class NotFoundError(ApiError):
    status = 404
    error = "not_found"


class RejectedError(ApiError):
    status = 409
    error = "rejected"


class NoAnswerError(ApiError):
    status = 504
    error = "no_answer"


def error_response(status: int, body: ErrorBody) -> JSONResponse:
    """The one error shape, with the seq header when the body knows the seq."""
    headers = {SEQ_HEADER: str(body.as_of_seq)} if body.as_of_seq is not None else None
    content = body.model_dump(exclude_none=True)
    return JSONResponse(content, status_code=status, headers=headers)


def _quote(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= QUOTE_MAX else text[: QUOTE_MAX - 3] + "..."


def validation_body(errors: list[Any]) -> ErrorBody:
    """The first validation error as one message naming the field (``loc`` without where it
    came from: ``("query", "limit")`` is ``limit``, ``("body", "weight")`` is ``weight``)."""
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    loc = [str(p) for p in first.get("loc", ())]
    where = loc[0] if loc and loc[0] in ("query", "path", "body", "header") else None
    parts = loc[1:] if where else loc
    field = ".".join(parts) or where or "request"
    if first.get("type") == "json_invalid":
        field = "body"
    message = f"{field}: {first.get('msg', 'invalid')}"
    if "input" in first and first.get("type") not in ("missing", "json_invalid"):
        message += f" (got {_quote(first['input'])})"
    if len(errors) > 1:
        message += f"; and {len(errors) - 1} more problem(s)"
    return ErrorBody(error="bad_request", message=message, field=field)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    body = ErrorBody(
        error=exc.error,
        message=exc.message,
        field=exc.field,
        reason=exc.reason,
        command_id=exc.command_id,
        as_of_seq=exc.seq,
    )
    response = error_response(exc.status, body)
    response.headers.update(exc.headers)
    return response


async def _validation(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | ValidationError)
    return error_response(400, validation_body(list(exc.errors())))


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        body = ErrorBody(error="not_found", message=f"no route {request.url.path}")
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
        body = ErrorBody(error="method_not_allowed", message=message)
    else:
        body = ErrorBody(error=f"http_{exc.status_code}", message=str(exc.detail))
    response = error_response(exc.status_code, body)
    for name, value in (exc.headers or {}).items():
        response.headers[name] = value
    return response


async def _timeout(request: Request, exc: Exception) -> JSONResponse:
    api = getattr(request.app.state, "api", None)  # the dashboard served alone has none
    bound = f" ({api.settings.api_request_timeout:g}s)" if api is not None else ""
    message = f"no answer within the request bound{bound}"
    return error_response(504, ErrorBody(error="timeout", message=message))


async def _backend(request: Request, exc: Exception) -> JSONResponse:
    # a ProjectionError names the service and where it is, never a password (describe_dsn)
    assert isinstance(exc, ProjectionError)
    log.warning("API %s %s: %s", request.method, request.url.path, exc)
    if isinstance(exc.__cause__, asyncpg.UndefinedTableError):
        message = "the read model has no tables yet: is `streamplane read-model` running?"
        return error_response(503, ErrorBody(error="unavailable", message=message))
    if isinstance(exc, UnknownTopicError):  # not set up yet, as much as unreachable
        message = f"{exc}: create the topics with `streamplane topics`"
        return error_response(503, ErrorBody(error="unavailable", message=message))
    if exc.retriable:
        return error_response(503, ErrorBody(error="unavailable", message=str(exc)))
    return error_response(500, ErrorBody(error="internal", message=str(exc)))


async def _internal(request: Request, exc: Exception) -> JSONResponse:
    log.exception("API %s %s failed", request.method, request.url.path, exc_info=exc)
    message = "internal error (logged by the API process)"
    return error_response(500, ErrorBody(error="internal", message=message))


def install_error_handlers(app: FastAPI) -> None:
    """Map every failure to :class:`ErrorBody` (see the module docstring)."""
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(TimeoutError, _timeout)
    app.add_exception_handler(ProjectionError, _backend)
    app.add_exception_handler(Exception, _internal)


#: the documented error answers of every route (the OpenAPI ``responses``)
ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "a parameter or the body is wrong"},
    500: {"model": ErrorBody, "description": "an internal error"},
    503: {"model": ErrorBody, "description": "PostgreSQL or Kafka is unreachable"},
    504: {"model": ErrorBody, "description": "no answer within the request bound"},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "no such stream or instance"},
}
COMMAND_ERRORS: dict[int | str, dict[str, Any]] = {
    409: {"model": ErrorBody, "description": "the orchestrator rejected the command"},
    504: {"model": ErrorBody, "description": "no orchestrator answered (or the request bound)"},
}
