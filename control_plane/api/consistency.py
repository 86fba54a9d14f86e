"""The full consistency check, read-only: ``GET /consistency`` (docs/consistency.md).

The same check as ``streamplane check`` (:func:`control_plane.checker_run.run_check`): the
control log replayed once and compared with the read model, the assignments and desired
topics and the workers' heartbeats. It repairs nothing (``streamplane check --repair`` does,
or ``POST /check`` for what the orchestrator sees itself); the replay is bounded by
``api_replay_timeout`` (over it: 504).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from control_plane.api.auth import AUTH_ERRORS, ReadAccess
from control_plane.api.context import ApiContext, BoundedRoute, as_of, context
from control_plane.api.errors import ERRORS
from control_plane.api.models import ConsistencyResponse
from control_plane.checker_run import CheckSettings, run_check

Ctx = Annotated[ApiContext, Depends(context)]
router = APIRouter(
    route_class=BoundedRoute,
    tags=["consistency"],
    responses={**ERRORS, **AUTH_ERRORS},
    dependencies=[ReadAccess],
)


@router.get("/consistency", response_model=ConsistencyResponse)
async def consistency(
    ctx: Ctx,
    response: Response,
    read_model: Annotated[bool, Query(description="compare the PostgreSQL read model")] = True,
    assignments: Annotated[bool, Query(description="compare the assignments topic")] = True,
    faust_tables: Annotated[
        bool, Query(description="compare the Faust projector's assignments table")
    ] = True,
) -> Any:
    """The ConsistencyReport: divergences per kind with examples, what was compared, how
    far each projection lags, and the consistency_score (1.0: clean)."""
    s = ctx.settings
    async with asyncio.timeout(s.api_replay_timeout):
        run = await run_check(
            s.read_model_settings(),
            CheckSettings(),
            read_model=read_model,
            assignments=assignments,
            faust_tables=faust_tables,
        )
    as_of(response, run.report.as_of_seq)
    return run.report.to_json()
