"""日程 in the console: a schedule added from the form lands in the timetable and the
calendar; the trigger's reasons show beside it; pause, 立即发送 and the firing history;
moving the start date previews what re-plans and keeps nothing; 今日 lists the day's pushes."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import Cohort
from app.clock import ManualClock
from app.console.models import Role
from app.models import OutboxMessage
from schedules.models import Firing, Schedule
from tests.console.support import (
    Console,
    make_account,
    make_cohort,
    make_robot_group,
    make_script,
    only_id,
)
from tests.support import AppHarness


async def _camp(sessions: async_sessionmaker[AsyncSession], clock: ManualClock) -> int:
    cohort = await make_cohort(sessions, clock, start="2026-03-01")
    await make_script(
        sessions, clock, key="day1_tasks", title="第一天任务", body="第 {{ day }} 天的任务：选品。"
    )
    await make_robot_group(sessions, clock, cohort)
    return cohort


def _form(cohort: int, **changes: str) -> dict[str, str]:
    return {
        "cohort_id": str(cohort),
        "script_key": "day1_tasks",
        "trigger_type": "cohort_day",
        "day": "1",
        "time": "08:00",
        "target_type": "cohort_groups",
        "enabled": "1",
        **changes,
    }


async def test_a_schedule_from_the_form_is_in_the_timetable_and_the_calendar(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    cohort = await _camp(sessions, clock)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        bad = await browser.post("/console/schedules", _form(cohort, time="25:00"))
        assert bad.status_code == 422
        assert "时间须为 HH:MM" in bad.text
        added = await browser.post("/console/schedules", _form(cohort))
        assert added.status_code == 303, added.text
        table = await browser.get(f"/console/schedules?cohort_id={cohort}")
        day1 = table.text.split("第 1 天")[1].split("</tr>")[0]
        assert "08:00" in day1
        assert "第一天任务" in day1
        shown = await browser.get("/console/schedules/calendar?hours=48")
        assert "2026-03-02 08:00 (Asia/Shanghai)" in shown.text
        assert "6期1群" in shown.text
        assert "群机器人" in shown.text
        schedule_id = await only_id(sessions, Schedule.id)
        paused = await browser.post(f"/console/schedules/{schedule_id}/toggle")
        assert paused.status_code == 303
        assert "已暂停" in (await browser.get(f"/console/schedules?cohort_id={cohort}")).text
        assert "2026-03-02 08:00" not in (await browser.get("/console/schedules/calendar")).text
        ran = await browser.post(f"/console/schedules/{schedule_id}/run")
        assert ran.status_code == 303
        assert ran.headers["location"].endswith("ran=1")
        history = await browser.get(f"/console/schedules/{schedule_id}")
        assert "已触发" in history.text
        home = await browser.get("/console/")
    assert "今天的推送" in home.text
    assert "6期1群" in home.text  # the run-now message, sent today, by the robot
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


async def test_moving_the_start_date_previews_the_replan_and_keeps_nothing(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    cohort = await _camp(sessions, clock)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        await browser.post("/console/schedules", _form(cohort))
        page = await browser.get(f"/console/cohorts/{cohort}")
        assert f'hx-post="/console/schedules/replan/{cohort}"' in page.text
        fields = {
            "name": "6 期",
            "camp": "跨境电商实战营",
            "start_date": "2026-03-03",
            "days": "7",
            "channel_state": "camp6",
            "timezone": "Asia/Shanghai",
        }
        preview = await browser.hx_post(f"/console/schedules/replan/{cohort}", fields)
        assert "将重新排期 1 条" in preview.text
        assert "03-02 08:00 → 03-04 08:00" in preview.text
        bad = await browser.hx_post(
            f"/console/schedules/replan/{cohort}", {**fields, "start_date": "2026-02-31"}
        )
        assert "没有这一天" in bad.text
    async with sessions() as session:
        moved = await session.scalar(select(Cohort.start_date))
        due = await session.scalar(select(Firing.due_at))
    assert str(moved) == "2026-03-01"  # the preview kept nothing
    assert due is not None
    assert due.isoformat().startswith("2026-03-02T00:00")
