"""发送记录 in the console: a message WeCom refused for good (a robot removed from its group:
93000) shows its Chinese hint; after the group is fixed, 重试 from the console sends it;
cancel takes a pending one out; 今日 lists the failure."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from app.console.models import Role
from app.models import OutboxMessage
from app.wecom_sandbox.state import SandboxState
from schedules import service as schedules
from tests.console.support import (
    Console,
    make_account,
    make_cohort,
    make_robot_group,
    make_script,
    only_id,
)
from tests.support import AppHarness


async def _send_all(app: AppHarness) -> None:
    sender = app.app.state.runtime.sender
    while await sender.run_once():
        pass


async def test_a_dead_message_shows_its_hint_and_is_retried_after_the_fix(
    sandboxed_console_app: AppHarness,
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sandbox: SandboxState,
) -> None:
    cohort = await make_cohort(sessions, clock)
    await make_script(sessions, clock, key="notice", title="通知", body="今晚 8 点直播。")
    await make_robot_group(sessions, clock, cohort, robot_key="gone-robot")
    async with sessions.begin() as session:
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
    await _send_all(sandboxed_console_app)  # the sandbox has no such robot: 93000, dead at once
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    other = await make_cohort(sessions, clock, name="7 期", state="camp7")
    async with Console(sandboxed_console_app.app) as browser:
        await browser.sign_in("xiaolu")
        home = await browser.get("/console/")
        assert "发送失败" in home.text
        assert "6期1群" in home.text.split('id="panel-outbox"')[1]
        dead = await browser.get("/console/outbox?status=dead")
        assert "6期1群" in dead.text
        assert "群机器人 webhook 地址无效，或机器人已被移出群" in dead.text  # 93000's hint
        ours = await browser.get(f"/console/outbox?cohort_id={cohort}")
        assert "6期1群" in ours.text
        theirs = await browser.get(f"/console/outbox?cohort_id={other}")
        assert theirs.status_code == 200
        assert "6期1群" not in theirs.text
        row_id = await only_id(sessions, OutboxMessage.id)
        sandbox.add_robot("gone-robot")  # the operator put the robot back into the group
        retried = await browser.hx_post(f"/console/outbox/{row_id}/retry")
        assert retried.status_code == 200
        assert "待发送" in retried.text
        again = await browser.hx_post(f"/console/outbox/{row_id}/retry")
        assert again.status_code == 409
        assert "只有发送失败（dead）的消息可以重试" in again.text
    clock.advance(timedelta(seconds=5))  # past the robot's rate slot the first try took
    await _send_all(sandboxed_console_app)
    async with sessions() as session:
        row = await session.get(OutboxMessage, row_id)
        assert row is not None
        assert row.status == "sent"
