"""Fixtures of the console's tests: the app on the test clock and database."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import ManualClock
from app.settings import Settings
from tests.support import AppHarness, running_app


@pytest.fixture
async def console_app(
    settings: Settings, clock: ManualClock, engine: AsyncEngine
) -> AsyncIterator[AppHarness]:
    async with running_app(settings=settings, clock=clock, engine=engine, sender=False) as app:
        yield app
