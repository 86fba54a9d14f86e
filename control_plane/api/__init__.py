"""The HTTP API process (FastAPI on uvicorn): reads from the PostgreSQL read model, time
travel by replaying the control log, commands sent to the orchestrator, ``/metrics``,
``/openapi.json`` and ``/docs``. Every endpoint, the error shape and paging: docs/api.md.

==================  ===========================================================
``settings``        ``ApiSettings`` and the bounds of inputs (``MAX_LIMIT``)
``app``             ``create_app``: routers, error handlers, metrics, dashboard
``context``         what routes share (database, topics, registry), the request bound
``errors``          the one error shape (``ErrorBody``) and the mapping to it
``models``          request bodies and responses (the OpenAPI document's schemas)
``reads``           health, instances, streams, history, migrations, lag
``queries``         their SQL over the read model
``history``         ``GET /state``: time travel by replay
``alerts``          ``GET /alerts``: firing alerts from ``<prefix>.alerts``
``commands``        the writes (``?wait=false``: 202)
``metrics``         request counter and latency by route template
``dashboard/``      the web dashboard (its own package; mounted when present)
==================  ===========================================================
"""

from control_plane.api.app import create_app
from control_plane.api.errors import SEQ_HEADER, ErrorBody
from control_plane.api.settings import MAX_LIMIT, ApiSettings

__all__ = ["MAX_LIMIT", "SEQ_HEADER", "ApiSettings", "ErrorBody", "create_app"]
