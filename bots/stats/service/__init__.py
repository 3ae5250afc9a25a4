"""Camp statistics: per-day check-in and homework rates, the drop-off curve, streaks,
participation, per group and per assistant, and the 上岸 count — all SQL aggregates.

Definitions (what every figure means):

- **Camp day.** Day 0 is the cohort's `start_date` (开营) in the cohort's time zone; a day
  runs from the check-in rule's `day_boundary` (04:00 by default) to the next day's, exactly
  as check-ins are dated. Camp days are 0..`days` (day 0 开营, days 1..`days` the lessons).
- **Observed days.** Only days that have begun count: 0..today (clipped to the last camp
  day). Later days are *omitted* from `days`; `today` and `total_days` say where the camp is.
  Today is included while in progress (`in_progress` is true on it).
- **Members of day N** (the denominator). A cohort member (`cohort_members`) whose
  `joined_at` is before the end of day N, and who had not left before day N began. A member
  has left when their status is `lost` or `removed`; CampBot records that status change with
  the member's `updated_at`, so that is taken as the moment they left (an operator edit of a
  member who already left moves it). A member who leaves during day N still counts on day N
  and drops out from day N+1.
- **checked_in** / **on_leave** / **homework_submitted** of day N: members of day N with a
  check-in entry for day N whose status is `on_time` or `makeup` (补卡) / `leave` (请假) /
  with a homework entry for day N (`on_time` or `makeup`). Entries of people who are not
  members of that day (they joined later, or left earlier) are not counted, so a rate never
  exceeds 1. Rates are count ÷ members rounded to 4 places, 0 when there are no members.
- **Drop-off.** `members` per day is the roster curve; retention is the share of the base
  day's `checked_in` members (default day 1, the first lesson after 开营) who are among
  day N's `checked_in` too.
- **Streaks.** From `member_scores`; a current streak counts only while unbroken: its last
  counted day is yesterday or today, or every day since is a 请假 day. Members with no score
  row have 0.
- **Participation (活动参与率).** An event is a camp day and a kind (check-in or homework):
  people in the group(s) during that day who submitted ÷ people in the group(s) during that
  day. Staff in the groups (internal members: a `userid` and no `external_userid`) are not
  counted; people CampBot has no member row for are (they are in the group, they did not
  submit).
- **上岸.** Members of the cohort with an approved achievement (喜报) recorded in this cohort,
  or tagged `上岸` (`member_tags`); each member once.

One module a section: `calendar` (camp days and the shared relations), `rates` (per day),
`dropoff`, `streaks`, `slices` (per group and per assistant), `participation` (with 全勤 and
上岸); here, everything at once (`cohort_stats`), or in three parts and the day table alone
(`parts`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.errors import InvalidInput
from bots.stats.service.calendar import LANDED_TAG, CampCalendar, rate
from bots.stats.service.dropoff import Dropoff, dropoff
from bots.stats.service.participation import (
    Participation,
    full_attendance,
    landed_count,
    participation,
)
from bots.stats.service.parts import (
    DailyStats,
    ShapeStats,
    SliceStatsAll,
    camp_days,
    daily_stats,
    days_of,
    default_base_day,
    enrolled_count,
    observed,
    shape_stats,
    slice_stats,
)
from bots.stats.service.rates import DayStats
from bots.stats.service.slices import GroupStats, SliceStats, assistant_stats, group_stats
from bots.stats.service.streaks import StreakBucket, streaks

__all__ = [
    "LANDED_TAG",
    "CampCalendar",
    "CohortStats",
    "DailyStats",
    "DayStats",
    "Dropoff",
    "GroupStats",
    "Participation",
    "ShapeStats",
    "SliceStats",
    "SliceStatsAll",
    "StreakBucket",
    "camp_days",
    "cohort_stats",
    "daily_stats",
    "participation",
    "rate",
    "shape_stats",
    "slice_stats",
]


@dataclass(frozen=True, slots=True)
class CohortStats:
    calendar: CampCalendar
    days: list[DayStats]
    dropoff: Dropoff
    streaks: list[StreakBucket]
    groups: list[GroupStats]
    assistants: list[SliceStats]
    enrolled: int  # every cohort_members row
    full_attendance: int
    landed: int

    @property
    def latest(self) -> DayStats | None:
        return self.days[-1] if self.days else None


async def cohort_stats(
    *, session: AsyncSession, cohort_id: int, now: datetime, base_day: int | None = None
) -> CohortStats:
    """Every figure of one cohort as of `now` (see the module docstring for definitions)."""
    calendar, table = await observed(session=session, cohort_id=cohort_id, now=now)
    if base_day is None:
        base_day = default_base_day(calendar.cohort)
    elif base_day > calendar.total_days:
        raise InvalidInput("base_day", f"这一期只有第 0–{calendar.total_days} 天。")
    # Before 开营 nothing has been observed: no days, every group and assistant at zero.
    days = await days_of(session=session, calendar=calendar, table=table)
    groups = await group_stats(session=session, calendar=calendar, days=table)
    assistants = await assistant_stats(session=session, calendar=calendar, days=table)
    enrolled = await enrolled_count(session=session, cohort_id=cohort_id)
    return CohortStats(
        calendar=calendar,
        days=days,
        dropoff=await dropoff(session=session, calendar=calendar, days=table, base_day=base_day),
        streaks=await streaks(session=session, calendar=calendar),
        groups=groups,
        assistants=assistants,
        enrolled=enrolled,
        full_attendance=await full_attendance(session=session, calendar=calendar),
        landed=await landed_count(session=session, cohort_id=cohort_id),
    )
