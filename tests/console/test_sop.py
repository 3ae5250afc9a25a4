"""群SOP in the console: the items told and not yet posted, for the assistant whose account
is linked to the WeCom member who should post them, and for operators; 跳过 from the page
closes one (recorded as skipped once); another cohort's assistant sees none of them and may
not skip them."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from app.console.models import Role
from app.models import OutboxMessage, OutboxStatus
from bots.sop import service
from bots.sop.models import SopOutcome, SopTask
from tests.bots.checkin.camp import local, make_cohort
from tests.bots.sop.camp import ASSISTANT, customer_camp
from tests.bots.sop.test_tasks import _item
from tests.console.support import Console, make_account
from tests.support import AppHarness


async def test_assistants_see_and_skip_their_items_operators_see_all(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await customer_camp(sessions)
    async with sessions.begin() as session:
        other = await make_cohort(session, state="camp7")
    at8 = local(1, 8)
    item = await _item(sessions, "a", "第 1 天 今日任务", at8)
    await _item(sessions, "b", "明天的干货", at8 + timedelta(days=1))  # not due yet
    clock.set(at8 + timedelta(seconds=3))
    await service.sop_round(sessions=sessions, clock=clock)  # the assistant is told

    await make_account(sessions, clock, "lisi", Role.ASSISTANT, wecom_userid=ASSISTANT)
    await make_account(sessions, clock, "wangwu", Role.ASSISTANT, cohort_ids=[other.id])
    await make_account(sessions, clock, "boss", Role.OPERATOR)
    async with Console(console_app.app) as boss:
        await boss.sign_in("boss")
        page = await boss.get("/console/sop")
        assert page.status_code == 200
        assert "6期学员群" in page.text
        assert "第 1 天 今日任务" in page.text
        assert "明天的干货" not in page.text
    async with Console(console_app.app) as stranger:
        await stranger.sign_in("wangwu")
        assert "第 1 天 今日任务" not in (await stranger.get("/console/sop")).text
        assert "第 1 天 今日任务" not in (await stranger.get("/console/")).text
        refused = await stranger.post(f"/console/sop/{item}/skip")
        assert refused.status_code == 403
    async with Console(console_app.app) as lisi:
        await lisi.sign_in("lisi")
        assert "第 1 天 今日任务" in (await lisi.get("/console/")).text  # the 今日 panel
        done = await lisi.post(f"/console/sop/{item}/skip")
        assert done.status_code == 303
        assert "没有待发送的群SOP" in (await lisi.get("/console/sop")).text
    async with sessions() as session:
        row = await session.get(OutboxMessage, item)
        task = await session.scalar(select(SopTask).where(SopTask.outbox_id == item))
    assert row is not None
    assert row.status == OutboxStatus.SKIPPED
    assert task is not None
    assert task.outcome == SopOutcome.SKIPPED
    assert task.done_by == "lisi（后台）"
