"""The dispatch tests' dispatcher and fresh inbox rows."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import inbox
from app.clock import ManualClock
from app.settings import Settings
from app.wecom.events import WeComEvent, parse_event
from bots.dispatch import Dispatcher, Router
from tests.support import text_message

DispatcherOf = Callable[..., Dispatcher]


@pytest.fixture
def dispatcher_of(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, clock: ManualClock
) -> DispatcherOf:
    """A dispatcher of these routers on the test's database, settings and clock."""

    def make(*routers: Router, concurrency: int | None = None) -> Dispatcher:
        return Dispatcher(
            routers=routers,
            sessions=sessions,
            settings=settings,
            clock=clock,
            concurrency=concurrency,
        )

    return make


async def claimed(
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    msg_id: str,
    content: str = "你好",
    *,
    body: str | None = None,
) -> tuple[inbox.Attempt, WeComEvent]:
    """A row as intake leaves it (recorded with its first attempt counted): a member's text,
    or `body`."""
    body = body or text_message(msg_id, content)
    event = parse_event(body)
    attempt = await inbox.Intake(sessions).claim(event=event, body=body, now=clock.now())
    assert attempt is not None
    return attempt, event
