"""Fixtures of the console's tests: the app on the test clock and database (and, for tests
that send, on the WeCom sandbox)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import ManualClock
from app.settings import Settings
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from tests.support import AppHarness, running_app


@pytest.fixture
async def console_app(
    settings: Settings, clock: ManualClock, engine: AsyncEngine
) -> AsyncIterator[AppHarness]:
    async with running_app(settings=settings, clock=clock, engine=engine, sender=False) as app:
        yield app


@pytest.fixture
async def sandboxed_console_app(
    settings: Settings, clock: ManualClock, engine: AsyncEngine, sandbox: SandboxState
) -> AsyncIterator[AppHarness]:
    """The console's app whose WeCom is the sandbox (its sender is run by the test)."""
    async with running_app(
        settings=settings,
        clock=clock,
        engine=engine,
        sender=False,
        wecom_transport=sandbox_transport(sandbox),
    ) as app:
        yield app
