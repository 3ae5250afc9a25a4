"""/healthz answers 200 only when the database does."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import ManualClock
from app.db import create_engine
from app.settings import Settings
from tests.support import AppHarness, running_app


async def test_healthy(harness: AppHarness) -> None:
    response = await harness.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok"}


async def test_unreachable_database_is_503(
    settings: Settings, clock: ManualClock, tmp_path: object
) -> None:
    # Nothing listens on port 1: the connection is refused at once.
    broken: AsyncEngine = create_engine("postgresql+asyncpg://campbot@127.0.0.1:1/campbot")
    async with running_app(settings=settings, clock=clock, engine=broken) as app:
        response = await app.client.get("/healthz")
    await broken.dispose()
    assert response.status_code == 503
    assert response.json()["status"] == "error"
