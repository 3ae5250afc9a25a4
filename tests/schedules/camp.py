"""A small camp for scheduler tests: a cohort, two robot groups, a script, a schedule."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import Cohort, CohortGroup
from app.clock import ManualClock
from app.models import Group
from schedules.models import Schedule
from schedules.planner import plan_schedule
from scripts_library.models import Script

TZ = "Asia/Shanghai"
START = date(2026, 3, 2)  # 开营 (day 0)
DAY1_0800 = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # day 1, 08:00 Shanghai


async def camp(
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    trigger: dict[str, Any] | None = None,
) -> int:
    """A cohort with two robot groups, a day script and a schedule; the schedule's id."""
    now = clock.now()
    async with sessions.begin() as session:
        cohort = Cohort(
            name="6 期",
            camp="跨境电商实战营",
            start_date=START,
            days=7,
            channel_state="camp6",
            timezone=TZ,
            created_at=now,
            updated_at=now,
        )
        session.add(cohort)
        await session.flush()
        for n in (1, 2):
            group = Group(
                name=f"6期{n}群",
                channel="robot",
                robot_key=f"robot-{n}",
                status="active",
                needs_sync=False,
                created_at=now,
                updated_at=now,
            )
            session.add(group)
            await session.flush()
            session.add(CohortGroup(group_id=group.id, cohort_id=cohort.id, linked_at=now))
        session.add(
            Script(
                key="day1_tasks",
                title="第1天任务",
                category="daily",
                msgtype="text",
                body="{{ group_name }}的同学们早！今天是第 {{ day }} 天。",
                attachments=[],
                schedule_hint=None,
                description="",
                version=1,
                created_at=now,
                updated_at=now,
            )
        )
        schedule = Schedule(
            script_key="day1_tasks",
            cohort_id=cohort.id,
            trigger=trigger or {"type": "cohort_day", "day": 1, "time": "08:00"},
            target={"type": "cohort_groups"},
            enabled=True,
            created_at=now,
            updated_at=now,
        )
        session.add(schedule)
        await session.flush()
        await plan_schedule(session=session, schedule=schedule, now=now, default_tz=TZ)
        return schedule.id
