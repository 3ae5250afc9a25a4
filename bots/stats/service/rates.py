"""Per camp day: members, check-in and homework rates, leave, who left."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import CTE, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bots.stats.service.calendar import (
    CampCalendar,
    count_if,
    day_roster,
    enrolled_members,
    rate,
    with_entries,
)


@dataclass(frozen=True, slots=True)
class DayStats:
    day: int
    date: date
    in_progress: bool
    members: int
    checked_in: int
    on_leave: int
    homework_submitted: int
    left: int  # members who left during this day (they still count in `members` today)

    @property
    def checkin_rate(self) -> float:
        return rate(self.checked_in, self.members)

    @property
    def homework_rate(self) -> float:
        return rate(self.homework_submitted, self.members)


async def day_stats(*, session: AsyncSession, calendar: CampCalendar, days: CTE) -> list[DayStats]:
    cohort_id = calendar.cohort.id
    enrolled = enrolled_members(cohort_id)
    roster = day_roster(days, enrolled)
    e = with_entries(roster, cohort_id)
    counted = select(
        roster.c.day,
        func.count(),
        count_if(e.checked()),
        count_if(e.on_leave()),
        count_if(e.submitted()),
    ).select_from(e.source)
    figures = {row[0]: row[1:] for row in await session.execute(counted.group_by(roster.c.day))}
    left_during = and_(enrolled.c.left_at >= days.c.starts, enrolled.c.left_at < days.c.ends)
    leavers = select(days.c.day, func.count()).select_from(days.join(enrolled, left_during))
    left: dict[int, int] = {
        int(d): int(n) for d, n in await session.execute(leavers.group_by(days.c.day))
    }
    result = []
    for window in calendar.windows:  # one row per observed day, zeros where nobody was enrolled
        members, checked, leave, homework = figures.get(window.day, (0, 0, 0, 0))
        result.append(
            DayStats(
                day=window.day,
                date=window.date,
                in_progress=window.day == calendar.today,
                members=int(members),
                checked_in=int(checked),
                on_leave=int(leave),
                homework_submitted=int(homework),
                left=int(left.get(window.day, 0)),
            )
        )
    return result
