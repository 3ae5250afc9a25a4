"""发送记录 in the console: a message WeCom refused for good (a robot removed from its group:
93000) shows its Chinese hint; after the group is fixed, 重试 from the console sends it;
cancel takes a pending one out; 今日 lists the failure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.admin.common import Actor
from app.admin.groups import service as groups
from app.clock import ManualClock
from app.console.models import Role
from app.models import OutboxMessage
from app.settings import Settings
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from schedules import service as schedules
from scripts_library import service as scripts
from tests.console.support import Console, make_account, make_cohort
from tests.support import AppHarness, running_app


@pytest.fixture
async def wired(
    settings: Settings, clock: ManualClock, engine: AsyncEngine, sandbox: SandboxState
) -> AsyncIterator[AppHarness]:
    async with running_app(
        settings=settings,
        clock=clock,
        engine=engine,
        sender=False,
        wecom_transport=sandbox_transport(sandbox),
    ) as app:
        yield app


async def _send_all(app: AppHarness) -> None:
    sender = app.app.state.runtime.sender
    while await sender.run_once():
        pass


async def test_a_dead_message_shows_its_hint_and_is_retried_after_the_fix(
    wired: AppHarness,
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sandbox: SandboxState,
) -> None:
    cohort = await make_cohort(sessions, clock)
    async with sessions.begin() as session:
        await scripts.create_script(
            session=session,
            key="notice",
            title="通知",
            msgtype="text",
            body="今晚 8 点直播。",
            category="daily",
            author="test",
            now=clock.now(),
        )
        await groups.create_group(
            session=session,
            actor=Actor("test"),
            now=clock.now(),
            cohort_id=cohort,
            name="6期1群",
            channel="robot",
            robot_key="gone-robot",
            chat_id=None,
            owner_userid=None,
        )
        schedule = await schedules.create_schedule(
            session=session,
            script_key="notice",
            cohort_id=cohort,
            trigger={"type": "cohort_day", "day": 3, "time": "20:00"},
            target={"type": "cohort_groups"},
            now=clock.now(),
            default_tz="Asia/Shanghai",
        )
        await schedules.run_now(
            session=session, schedule=schedule, now=clock.now(), default_tz="Asia/Shanghai"
        )
    await _send_all(wired)  # the sandbox has no such robot: 93000, dead at once
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    other = await make_cohort(sessions, clock, name="7 期", state="camp7")
    async with Console(wired.app) as browser:
        await browser.sign_in("xiaolu")
        home = await browser.get("/console/")
        assert "发送失败" in home.text
        assert "6期1群" in home.text.split('id="panel-outbox"')[1]
        dead = await browser.get("/console/outbox?status=dead")
        assert "6期1群" in dead.text
        assert "93000" in dead.text or "机器人" in dead.text
        ours = await browser.get(f"/console/outbox?cohort_id={cohort}")
        assert "6期1群" in ours.text
        theirs = await browser.get(f"/console/outbox?cohort_id={other}")
        assert theirs.status_code == 200
        assert "6期1群" not in theirs.text
        row_id = await _only_row(sessions)
        sandbox.add_robot("gone-robot")  # the operator put the robot back into the group
        retried = await browser.hx_post(f"/console/outbox/{row_id}/retry")
        assert retried.status_code == 200
        assert "待发送" in retried.text
        again = await browser.hx_post(f"/console/outbox/{row_id}/retry")
        assert again.status_code == 409
        assert "只有发送失败（dead）的消息可以重试" in again.text
    clock.advance(timedelta(seconds=5))  # past the robot's rate slot the first try took
    await _send_all(wired)
    async with sessions() as session:
        row = await session.get(OutboxMessage, row_id)
        assert row is not None
        assert row.status == "sent"


async def _only_row(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        found = await session.scalar(select(OutboxMessage.id))
        assert found is not None
        return found
