"""The app with `/metrics` on, for the metrics and dashboard tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import ManualClock
from app.settings import Settings
from tests.support import AppHarness, running_app

METRICS_TOKEN = "metrics-token-0123456789"


@pytest.fixture
async def metered(
    settings: Settings, clock: ManualClock, engine: AsyncEngine
) -> AsyncIterator[AppHarness]:
    """The app with METRICS_TOKEN set: `/metrics` answers its bearer."""
    with_token = settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)})
    async with running_app(settings=with_token, clock=clock, engine=engine) as running:
        yield running
