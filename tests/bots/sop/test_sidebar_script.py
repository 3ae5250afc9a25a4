"""A 话术库 script rendered in a group's sidebar says what the same script pushed to that group
on schedule says at the same moment: the same variables (the cohort's day and clock, the
check-in capability's counts), from the same code."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.clock import ManualClock
from app.models import OutboxMessage
from app.settings import QuotaMode, Settings
from app.wecom_sandbox.state import SandboxState
from schedules.runner import fire_due
from scripts_library.service import update_script
from tests.bots.checkin.camp import T_START, local
from tests.bots.sop.camp import ASSISTANT, CHAT, TZ, add_schedule, customer_camp, extensions
from tests.bots.sop.test_sidebar_api import app, sign_in
from tests.support import AppHarness

__all__ = ["app"]  # the sidebar API's app fixture, shared

BODY = (
    "{{ group_name }}：{{ date }}{{ weekday }}，第 {{ day }} 天，已打卡 {{ checkin_count }} 人，"
    "还有 {{ unchecked_count }} 人。{{ assistant_name }}"
)


async def test_a_script_in_the_sidebar_says_what_its_scheduled_push_says(
    app: AppHarness, sandbox: SandboxState, clock: ManualClock, sessions, settings: Settings
) -> None:
    camp = await customer_camp(sessions, students=("小林", "Amy"))
    async with sessions.begin() as session:
        await update_script(
            session=session, key="daily_tip", author="test", body=BODY, now=T_START
        )
        await add_schedule(
            session, camp.cohort_id, "daily_tip", {"type": "cohort_day", "day": 1, "time": "20:00"}
        )
    clock.set(local(1, 20) + timedelta(seconds=1))
    wired = extensions(settings, QuotaMode.MONTH_DAYS)
    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ, extensions=wired)
    assert (report.fired, report.failed) == (1, 0)
    async with sessions() as session:
        pushed = await session.scalar(select(OutboxMessage).where(OutboxMessage.target == CHAT))
    assert pushed is not None

    await sign_in(app, sandbox, clock, ASSISTANT)
    shown = await app.client.get(f"/sidebar/api/groups/{CHAT}/scripts/daily_tip")
    assert shown.status_code == 200, shown.text
    text = shown.json()["message"]["content"]
    assert text == pushed.payload["message"]["content"]
    assert text.startswith("6期学员群：3月3日周二，第 1 天，已打卡 0 人，还有 2 人。")
