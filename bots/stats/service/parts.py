"""`cohort_stats` in three parts, each its own few queries, for a page that shows the day
table first and fetches the rest as it is viewed (the console's 数据): the days with the
summary's counts, the groups and assistants, the drop-off and streaks. The figures are
those of `cohort_stats` (the same functions compute them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import CohortMember
from bots.stats.service.calendar import (
    DEFAULT_BASE_DAY,
    CampCalendar,
    days_table,
    load_calendar,
)
from bots.stats.service.dropoff import Dropoff, dropoff
from bots.stats.service.participation import full_attendance, landed_count
from bots.stats.service.rates import DayStats, day_stats
from bots.stats.service.slices import GroupStats, SliceStats, assistant_stats, group_stats
from bots.stats.service.streaks import StreakBucket, streaks


@dataclass(frozen=True, slots=True)
class DailyStats:
    calendar: CampCalendar
    days: list[DayStats]
    enrolled: int
    full_attendance: int
    landed: int

    @property
    def latest(self) -> DayStats | None:
        return self.days[-1] if self.days else None


@dataclass(frozen=True, slots=True)
class SliceStatsAll:
    groups: list[GroupStats]
    assistants: list[SliceStats]


@dataclass(frozen=True, slots=True)
class ShapeStats:
    dropoff: Dropoff
    streaks: list[StreakBucket]


async def daily_stats(*, session: AsyncSession, cohort_id: int, now: datetime) -> DailyStats:
    calendar = await load_calendar(session=session, cohort_id=cohort_id, now=now)
    table = days_table(calendar.windows) if calendar.windows else None
    days = (
        await day_stats(session=session, calendar=calendar, days=table)
        if table is not None
        else []
    )
    enrolled = await session.scalar(
        select(func.count()).select_from(CohortMember).where(CohortMember.cohort_id == cohort_id)
    )
    return DailyStats(
        calendar=calendar,
        days=days,
        enrolled=int(enrolled or 0),
        full_attendance=await full_attendance(session=session, calendar=calendar),
        landed=await landed_count(session=session, cohort_id=cohort_id),
    )


async def slice_stats(*, session: AsyncSession, cohort_id: int, now: datetime) -> SliceStatsAll:
    calendar = await load_calendar(session=session, cohort_id=cohort_id, now=now)
    table = days_table(calendar.windows) if calendar.windows else None
    return SliceStatsAll(
        groups=await group_stats(session=session, calendar=calendar, days=table),
        assistants=await assistant_stats(session=session, calendar=calendar, days=table),
    )


async def shape_stats(*, session: AsyncSession, cohort_id: int, now: datetime) -> ShapeStats:
    calendar = await load_calendar(session=session, cohort_id=cohort_id, now=now)
    table = days_table(calendar.windows) if calendar.windows else None
    base_day = min(DEFAULT_BASE_DAY, calendar.cohort.days)  # as `cohort_stats` defaults it
    return ShapeStats(
        dropoff=await dropoff(session=session, calendar=calendar, days=table, base_day=base_day),
        streaks=await streaks(session=session, calendar=calendar),
    )
