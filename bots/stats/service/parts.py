"""`cohort_stats` in three parts, each its own few queries, for a page that shows the day
table first and fetches the rest as it is viewed (the console's 数据): the days with the
summary's counts, the groups and assistants, the drop-off and streaks; and the day table
alone (`camp_days`). The figures are those of `cohort_stats` (the same functions compute
them, `cohort_stats` from the helpers here)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import CTE, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort, CohortMember
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


def default_base_day(cohort: Cohort) -> int:
    return min(DEFAULT_BASE_DAY, cohort.days)


async def observed(
    *, session: AsyncSession, cohort_id: int, now: datetime
) -> tuple[CampCalendar, CTE | None]:
    """The cohort's calendar and its observed days' table (None before 开营)."""
    calendar = await load_calendar(session=session, cohort_id=cohort_id, now=now)
    return calendar, days_table(calendar.windows) if calendar.windows else None


async def days_of(
    *, session: AsyncSession, calendar: CampCalendar, table: CTE | None
) -> list[DayStats]:
    """Each observed day's figures; none before 开营."""
    if table is None:
        return []
    return await day_stats(session=session, calendar=calendar, days=table)


async def enrolled_count(*, session: AsyncSession, cohort_id: int) -> int:
    """Every cohort_members row."""
    enrolled = await session.scalar(
        select(func.count()).select_from(CohortMember).where(CohortMember.cohort_id == cohort_id)
    )
    return int(enrolled or 0)


async def camp_days(
    *, session: AsyncSession, cohort_id: int, now: datetime
) -> tuple[CampCalendar, list[DayStats]]:
    """The calendar and the day table alone (the chart and the CSV need no more)."""
    calendar, table = await observed(session=session, cohort_id=cohort_id, now=now)
    return calendar, await days_of(session=session, calendar=calendar, table=table)


async def daily_stats(*, session: AsyncSession, cohort_id: int, now: datetime) -> DailyStats:
    calendar, days = await camp_days(session=session, cohort_id=cohort_id, now=now)
    return DailyStats(
        calendar=calendar,
        days=days,
        enrolled=await enrolled_count(session=session, cohort_id=cohort_id),
        full_attendance=await full_attendance(session=session, calendar=calendar),
        landed=await landed_count(session=session, cohort_id=cohort_id),
    )


async def slice_stats(*, session: AsyncSession, cohort_id: int, now: datetime) -> SliceStatsAll:
    calendar, table = await observed(session=session, cohort_id=cohort_id, now=now)
    return SliceStatsAll(
        groups=await group_stats(session=session, calendar=calendar, days=table),
        assistants=await assistant_stats(session=session, calendar=calendar, days=table),
    )


async def shape_stats(*, session: AsyncSession, cohort_id: int, now: datetime) -> ShapeStats:
    calendar, table = await observed(session=session, cohort_id=cohort_id, now=now)
    base_day = default_base_day(calendar.cohort)  # as `cohort_stats` defaults it
    return ShapeStats(
        dropoff=await dropoff(session=session, calendar=calendar, days=table, base_day=base_day),
        streaks=await streaks(session=session, calendar=calendar),
    )
