"""Writes: each route builds a command (``events.commands``) and sends it to the
orchestrator through ``control_plane.client``; nothing here changes state itself.

``?wait=true`` (the default) waits up to ``api_command_wait`` for the outcome: 200 with the
``CommandCompleted`` and the events the command caused, 409 with the orchestrator's reason
when it refused, 504 with the command id when no orchestrator answered (the command stays
on the topic: an orchestrator that comes up later still carries it out, once).
``?wait=false`` answers 202 with the command id as soon as Kafka has the command.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Response
from fastapi.responses import JSONResponse

from control_plane.api.auth import AUTH_ERRORS, AdminAccess, OperateAccess, Principal
from control_plane.api.context import ApiContext, BoundedRoute, as_of, context
from control_plane.api.errors import COMMAND_ERRORS, ERRORS, NoAnswerError, RejectedError
from control_plane.api.models import (
    CapacityBody,
    CommandAccepted,
    CommandOutcome,
    RegisterStreamBody,
)
from control_plane.api.reads import ServerIdPath, StreamIdPath
from control_plane.client import build_command, post_command, send_command
from control_plane.errors import CommandRejectedError, CommandTimeoutError
from events import commands as cmd
from events.base import Command
from events.codec import to_wire

Ctx = Annotated[ApiContext, Depends(context)]
#: the caller, allowed the ``operate`` scope (streams, drains, rebalance, check)
Operator = Annotated[Principal, Depends(OperateAccess)]
#: the caller, allowed the ``admin`` scope (capacity, recovery)
Admin = Annotated[Principal, Depends(AdminAccess)]
Wait = Annotated[bool, Query(description="false: answer 202 with the command id without waiting")]
SOURCE = "streamplane/api"
ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": CommandAccepted, "description": "sent; not waited for (?wait=false)"},
}

router = APIRouter(
    route_class=BoundedRoute,
    tags=["commands"],
    responses={**ERRORS, **AUTH_ERRORS, **COMMAND_ERRORS, **ACCEPTED},
)


async def carry_out(
    ctx: ApiContext,
    who: Principal,
    response: Response,
    wait: bool,
    build: type[Command],
    **fields: Any,
) -> CommandOutcome | JSONResponse:
    """Build, send and (with ``wait``) wait for one command, recorded as issued by
    ``who`` (the token's name); see the module docstring."""
    s = ctx.settings
    fields["principal"] = who.name
    command = build_command(build, source=SOURCE, **fields)  # a bad field: 400 (errors.py)
    command_id = command.command_id
    if not wait:
        await post_command(s.kafka_access, ctx.topics, command, kafka_timeout=s.api_kafka_timeout)
        accepted = CommandAccepted(command_id=command_id, command_type=build.__name__)
        return JSONResponse(accepted.model_dump(), status_code=202)
    try:
        done, caused = await send_command(
            s.kafka_access,
            ctx.topics,
            build,
            wait_s=s.api_command_wait,
            source=SOURCE,
            command_id=command_id,
            **fields,
        )
    except CommandRejectedError as exc:
        message = f"the orchestrator rejected {build.__name__} ({exc.reason}): {exc.detail}"
        raise RejectedError(message, reason=exc.reason, command_id=command_id) from exc
    except CommandTimeoutError as exc:
        raise NoAnswerError(str(exc), command_id=command_id) from exc
    return CommandOutcome(
        as_of_seq=as_of(response, done.seq),
        command_id=command_id,
        outcome=to_wire(done),
        events=[to_wire(e) for e in caused],
    )


@router.post("/streams", response_model=CommandOutcome)
async def register_stream(
    ctx: Ctx,
    who: Operator,
    response: Response,
    body: Annotated[RegisterStreamBody, Body()],
    wait: Wait = True,
) -> Any:
    """Register a stream (RegisterStream); the orchestrator places it."""
    return await carry_out(ctx, who, response, wait, cmd.RegisterStream, **body.model_dump())


@router.delete("/streams/{stream_id}", response_model=CommandOutcome)
async def deregister_stream(
    ctx: Ctx, who: Operator, response: Response, stream_id: StreamIdPath, wait: Wait = True
) -> Any:
    """Deregister a stream (DeregisterStream); its owner stops it."""
    return await carry_out(ctx, who, response, wait, cmd.DeregisterStream, stream_id=stream_id)


@router.post("/instances/{server_id}/drain", response_model=CommandOutcome)
async def drain(
    ctx: Ctx, who: Operator, response: Response, server_id: ServerIdPath, wait: Wait = True
) -> Any:
    """Drain an instance (DrainInstance): no new streams; its streams move, make-before-break."""
    return await carry_out(ctx, who, response, wait, cmd.DrainInstance, server_id=server_id)


@router.post("/instances/{server_id}/undrain", response_model=CommandOutcome)
async def undrain(
    ctx: Ctx, who: Operator, response: Response, server_id: ServerIdPath, wait: Wait = True
) -> Any:
    """Take an instance out of draining (UndrainInstance)."""
    return await carry_out(ctx, who, response, wait, cmd.UndrainInstance, server_id=server_id)


@router.put("/instances/{server_id}/capacity", response_model=CommandOutcome)
async def set_capacity(
    ctx: Ctx,
    who: Admin,
    response: Response,
    server_id: ServerIdPath,
    body: Annotated[CapacityBody, Body()],
    wait: Wait = True,
) -> Any:
    """Set an instance's capacity (SetCapacity)."""
    fields = {"server_id": server_id, "max_streams": body.max_streams}
    return await carry_out(ctx, who, response, wait, cmd.SetCapacity, **fields)


@router.post("/rebalance", response_model=CommandOutcome)
async def rebalance(
    ctx: Ctx,
    who: Operator,
    response: Response,
    dry_run: Annotated[bool, Query(description="plan only (the plan is still logged)")] = True,
    wait: Wait = True,
) -> Any:
    """Ask for a rebalance (RequestRebalance); a dry run by default."""
    return await carry_out(ctx, who, response, wait, cmd.RequestRebalance, dry_run=dry_run)


@router.post("/check", response_model=CommandOutcome)
async def consistency_check(
    ctx: Ctx,
    who: Operator,
    response: Response,
    repair: Annotated[bool, Query(description="repair what it finds (through events)")] = False,
    wait: Wait = True,
) -> Any:
    """Run the consistency check (RunConsistencyCheck)."""
    return await carry_out(ctx, who, response, wait, cmd.RunConsistencyCheck, repair=repair)


@router.post("/recover", response_model=CommandOutcome)
async def recover(ctx: Ctx, who: Admin, response: Response, wait: Wait = True) -> Any:
    """Emergency recovery (EmergencyRecovery): fence, reconcile, reassign, leave maintenance."""
    return await carry_out(ctx, who, response, wait, cmd.EmergencyRecovery)
