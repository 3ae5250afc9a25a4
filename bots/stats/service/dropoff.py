"""The drop-off curve: of the base day's checkers, how many check in on each later day."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import CTE, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bots.stats.service.calendar import (
    CampCalendar,
    day_roster,
    enrolled_members,
    rate,
    with_entries,
)


@dataclass(frozen=True, slots=True)
class RetentionPoint:
    day: int
    retained: int  # base-day checkers who checked in on this day too
    retention_rate: float


@dataclass(frozen=True, slots=True)
class Dropoff:
    base_day: int
    base_checked_in: int
    points: tuple[RetentionPoint, ...]  # observed days from the base day on


async def dropoff(
    *, session: AsyncSession, calendar: CampCalendar, days: CTE | None, base_day: int
) -> Dropoff:
    """Of the base day's checkers (members that day), how many check in on each later day."""
    if days is None or calendar.latest_day is None or base_day > calendar.latest_day:
        return Dropoff(base_day=base_day, base_checked_in=0, points=())
    roster = day_roster(days, enrolled_members(calendar.cohort.id))
    e = with_entries(roster, calendar.cohort.id)
    checked = (
        select(roster.c.day, roster.c.member_id)
        .select_from(e.source)
        .where(e.checked())
        .subquery("checked")
    )
    base = select(checked.c.member_id).where(checked.c.day == base_day)
    base_count = await session.scalar(select(func.count()).select_from(base.subquery()))
    query = (
        select(checked.c.day, func.count())
        .where(checked.c.day >= base_day, checked.c.member_id.in_(base))
        .group_by(checked.c.day)
    )
    retained = {int(d): int(n) for d, n in await session.execute(query)}
    whole = int(base_count or 0)
    points = tuple(
        RetentionPoint(day, retained.get(day, 0), rate(retained.get(day, 0), whole))
        for day in range(base_day, calendar.latest_day + 1)
    )
    return Dropoff(base_day=base_day, base_checked_in=whole, points=points)
