"""`GET /metrics`: Prometheus text format, for whoever holds METRICS_TOKEN.

Without METRICS_TOKEN the route answers 404 (metrics are off); with it, a request
without `Authorization: Bearer <METRICS_TOKEN>` gets 401. What one instance counted, and
the database's gauges read now (`app.metrics`); Prometheus scrapes every instance.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from app.metrics import database_gauges
from app.runtime import Runtime

router = APIRouter(tags=["metrics"])


class _Read:
    """A collector of metrics read already (the database's, read before rendering)."""

    def __init__(self, metrics: list[Metric]) -> None:
        self._metrics = metrics

    def collect(self) -> list[Metric]:
        return self._metrics


def _authorized(request: Request, token: str) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        given.strip().encode(), token.encode()
    )


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    runtime: Runtime = request.app.state.runtime
    token = runtime.settings.metrics_token
    if token is None:
        return PlainTextResponse("metrics are off: set METRICS_TOKEN", status_code=404)
    if not _authorized(request, token.get_secret_value()):
        return PlainTextResponse(
            "Authorization: Bearer <METRICS_TOKEN> required",
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    body = generate_latest(REGISTRY)
    try:
        async with runtime.sessions() as session:
            gauges = await database_gauges(session=session, now=runtime.clock.now())
    except (SQLAlchemyError, OSError):
        gauges = []  # the process's own metrics still answer; `up` stays 1
    shared = CollectorRegistry(auto_describe=False)
    shared.register(_Read(gauges))
    return Response(body + generate_latest(shared), media_type=CONTENT_TYPE_LATEST)
