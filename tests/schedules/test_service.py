"""Saving a schedule: refused with the field and a Chinese reason, planned at once."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from app.clock import ManualClock
from app.models import OutboxMessage
from schedules.models import Firing
from schedules.service import ScheduleProblem, create_schedule, run_now, update_schedule
from tests.schedules.camp import DAY1_0800, TZ, camp

DAY = {"type": "cohort_day", "day": 2, "time": "08:00"}


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"script_key": "nope"}, "script_key", "话术不存在"),
        ({"cohort_id": 99}, "cohort_id", "期次不存在"),
        ({"trigger": {"type": "cohort_day", "day": 1, "time": "25:00"}}, "trigger", "HH:MM"),
        ({"target": {"type": "everyone"}}, "target", "未知的目标类型"),
        ({"target": {"type": "members", "filter": "vip"}}, "target", "未知的成员筛选"),
        ({"cohort_id": None}, "cohort_id", "需要指定期次"),
    ],
)
async def test_invalid_schedules_are_refused_naming_the_field(
    sessions, clock: ManualClock, changes: dict[str, Any], field: str, words: str
) -> None:
    await camp(sessions, clock)
    fields: dict[str, Any] = {
        "script_key": "day1_tasks",
        "cohort_id": 1,
        "trigger": DAY,
        "target": {"type": "cohort_groups"},
        **changes,
    }
    async with sessions.begin() as session:
        with pytest.raises(ScheduleProblem) as caught:
            await create_schedule(session=session, now=clock.now(), default_tz=TZ, **fields)
    assert caught.value.field == field
    assert words in caught.value.message


async def test_edit_replans_and_run_now_sends_at_once(sessions, clock: ManualClock) -> None:
    await camp(sessions, clock)
    async with sessions.begin() as session:
        schedule = await create_schedule(
            session=session,
            script_key="day1_tasks",
            cohort_id=1,
            trigger=DAY,
            target={"type": "cohort_groups"},
            now=clock.now(),
            default_tz=TZ,
        )
        await update_schedule(
            session=session,
            schedule=schedule,
            changes={"trigger": {**DAY, "time": "09:30"}},
            now=clock.now(),
            default_tz=TZ,
        )
        due = (
            await session.execute(select(Firing.due_at).where(Firing.schedule_id == schedule.id))
        ).scalar_one()
        assert due == DAY1_0800 + timedelta(days=1, hours=1, minutes=30)
        firing = await run_now(session=session, schedule=schedule, now=clock.now(), default_tz=TZ)
        assert (firing.status, firing.enqueued) == ("fired", 2)
    async with sessions() as session:
        keys = (await session.execute(select(OutboxMessage.key))).scalars().all()
    assert len(keys) == 2
