"""``GET /alerts``: the firing alerts, read back from ``<prefix>.alerts``.

The monitor writes one record per alert transition (``AlertFired``/``AlertResolved``, keyed
by the alert's key) on a compacted topic; the latest record of each key says whether it
fires now. ``projections.io.alerts.read_alerts`` reads the whole topic (the same reader
``streamplane alerts`` and the monitor use) and ``events.alerts.firing`` keeps the firing
ones, worst first.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response

from control_plane.api.auth import AUTH_ERRORS, ReadAccess
from control_plane.api.context import ApiContext, BoundedRoute, as_of, context
from control_plane.api.errors import ERRORS
from control_plane.api.models import AlertsResponse, AlertView
from events.alerts import AlertFired, AlertMessage, firing
from events.codec import decode_alert
from events.errors import EventError
from projections.io.alerts import read_alerts

Ctx = Annotated[ApiContext, Depends(context)]
router = APIRouter(
    route_class=BoundedRoute,
    tags=["reads"],
    responses={**ERRORS, **AUTH_ERRORS},
    dependencies=[ReadAccess],
)


def alert_json(alert: AlertMessage) -> dict[str, Any]:
    """An alert record as plain JSON with its ``status`` (firing/resolved), ``subject``
    (what it is about) and ``at`` (when it was decided)."""
    data = alert.model_dump(mode="json", exclude={"type"})
    status = "firing" if isinstance(alert, AlertFired) else "resolved"
    return {**data, "status": status, "subject": alert.about, "at": data["time"]}


def alert_of(value: bytes | None) -> dict[str, Any] | None:
    """:func:`alert_json` of one record's value; None for a tombstone or a record that is
    not an alert (the readers skip it: one bad record must not hide the others)."""
    if value is None:
        return None
    try:
        return alert_json(decode_alert(value))
    except EventError:
        return None


@router.get("/alerts", response_model=AlertsResponse)
async def alerts(ctx: Ctx, response: Response) -> AlertsResponse:
    """The alerts firing now, worst first; ``as_of_seq`` is the highest control-log seq
    any alert record on the topic refers to (the monitor's view of the log)."""
    s = ctx.settings
    latest = await read_alerts(s.kafka_access, ctx.topics, kafka_timeout=s.api_kafka_timeout)
    live = [AlertView.model_validate(alert_json(a)) for a in firing(latest)]
    seq = max((a.seq for a in latest.values()), default=0)
    return AlertsResponse(as_of_seq=as_of(response, seq), alerts=live, keys=len(latest))
