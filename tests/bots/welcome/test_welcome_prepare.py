"""The dispatcher's prepare steps (what the welcome's WeCom lookups run in): before the
event's transaction, only for registrations whose rules match, results handed over."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import ManualClock
from app.settings import Settings
from app.wecom_sandbox.callbacks import CallbackBuilder
from bots.dispatch import Context, Router
from bots.dispatch.rules import ChangeType
from tests.support import T0, contact_added, inbox_rows, running_app


async def test_prepare_runs_before_the_transaction_and_hands_over_its_result(
    settings: Settings,
    clock: ManualClock,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    wecom: CallbackBuilder,
) -> None:
    seen: list[str] = []
    router = Router("probe")

    async def look(ctx: Context) -> Mapping[str, Any]:
        # No statement has run: the session holds no connection, nothing is locked.
        seen.append(f"prepare in_transaction={ctx.session.in_transaction()}")
        return {"looked_up": ctx.event.dedupe_key}

    async def never(ctx: Context) -> Mapping[str, Any]:
        seen.append("prepare of a registration that does not match")
        return {}

    @router.on_event("change_external_contact", ChangeType("add_external_contact"), prepare=look)
    async def handle(ctx: Context) -> None:
        seen.append(f"handler in_transaction={ctx.session.in_transaction()}")
        seen.append(f"matched={ctx.matched['looked_up'] == ctx.event.dedupe_key}")

    @router.on_event("change_external_contact", ChangeType("del_follow_user"), prepare=never)
    async def other(ctx: Context) -> None:
        seen.append("other handler")

    async with running_app(
        settings=settings, clock=clock, engine=engine, routers=[router]
    ) as harness:
        await harness.deliver(wecom.post(contact_added("wmA"), at=T0))
    assert seen == [
        "prepare in_transaction=False",
        "handler in_transaction=True",
        "matched=True",
    ]
    assert {r.status for r in await inbox_rows(sessions)} == {"handled"}
