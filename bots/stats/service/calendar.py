"""The camp calendar every figure counts by (day 0 = 开营, days from the check-in
rule's boundary) and the relations the figures share: the observed days as a table, who
was a member on each, and their entries of that day."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    CTE,
    ColumnElement,
    Integer,
    Subquery,
    and_,
    case,
    func,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.admin.common import get_or_404
from app.admin.models import Cohort, CohortMember
from app.db import UTCDateTime
from app.models import Member, MemberStatus
from bots.checkin.models import CheckinEntry, CheckinRule, EntryKind, EntryStatus

DEFAULT_DAY_BOUNDARY = time(4, 0)
LANDED_TAG = "上岸"
DEFAULT_BASE_DAY = 1
DONE = (EntryStatus.ON_TIME.value, EntryStatus.MAKEUP.value)
# (lowest, highest or None, label): the streak buckets operators read at a glance.
STREAK_BUCKETS: tuple[tuple[int, int | None, str], ...] = (
    (0, 0, "0 天"),
    (1, 2, "1–2 天"),
    (3, 6, "3–6 天"),
    (7, 13, "7–13 天"),
    (14, 20, "14–20 天"),
    (21, None, "21 天及以上"),
)


def rate(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


# --- the calendar ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DayWindow:
    day: int
    date: date
    starts: datetime  # UTC
    ends: datetime  # UTC, exclusive


@dataclass(frozen=True, slots=True)
class CampCalendar:
    cohort: Cohort
    boundary: time  # when a camp day begins (local time)
    today: int  # the camp day `now` falls in; < 0 before 开营, > total_days after the end
    windows: tuple[DayWindow, ...]  # the observed days

    @property
    def total_days(self) -> int:
        return self.cohort.days

    @property
    def latest_day(self) -> int | None:
        return self.windows[-1].day if self.windows else None


def day_window(cohort: Cohort, boundary: time, day: int) -> DayWindow:
    zone = ZoneInfo(cohort.timezone)
    local = cohort.start_date + timedelta(days=day)
    starts = datetime.combine(local, boundary, tzinfo=zone)
    ends = datetime.combine(local + timedelta(days=1), boundary, tzinfo=zone)
    return DayWindow(day=day, date=local, starts=starts.astimezone(UTC), ends=ends.astimezone(UTC))


def camp_today(cohort: Cohort, boundary: time, now: datetime) -> int:
    local = now.astimezone(ZoneInfo(cohort.timezone))
    shifted = local - timedelta(hours=boundary.hour, minutes=boundary.minute)
    return (shifted.date() - cohort.start_date).days


async def load_calendar(*, session: AsyncSession, cohort_id: int, now: datetime) -> CampCalendar:
    cohort = await get_or_404(Cohort, cohort_id, session=session, what="训练营期次")
    boundary = await session.scalar(
        select(CheckinRule.day_boundary).where(CheckinRule.cohort_id == cohort_id)
    )
    boundary = boundary or DEFAULT_DAY_BOUNDARY
    today = camp_today(cohort, boundary, now)
    last = min(today, cohort.days)  # day 0 开营, days 1..N the lessons
    windows = tuple(day_window(cohort, boundary, day) for day in range(0, last + 1))
    return CampCalendar(cohort=cohort, boundary=boundary, today=today, windows=windows)


# --- shared relations -----------------------------------------------------------------------


def days_table(windows: Sequence[DayWindow]) -> CTE:
    """The observed days as a table (day, starts, ends), so one query covers every day."""
    rows = [
        select(
            literal(w.day, Integer).label("day"),
            literal(w.starts, UTCDateTime).label("starts"),
            literal(w.ends, UTCDateTime).label("ends"),
        )
        for w in windows
    ]
    if len(rows) == 1:
        return rows[0].cte("camp_days")
    return union_all(*rows).cte("camp_days")


def enrolled_members(cohort_id: int) -> Subquery:
    """The cohort's members: when they joined, when they left (None while active), assistant."""
    left_at = case((Member.status == MemberStatus.ACTIVE.value, null()), else_=Member.updated_at)
    return (
        select(
            CohortMember.member_id,
            CohortMember.joined_at,
            left_at.label("left_at"),
            Member.staff_userid,
        )
        .join(Member, Member.id == CohortMember.member_id)
        .where(CohortMember.cohort_id == cohort_id)
        .subquery("enrolled")
    )


def day_roster(days: CTE, enrolled: Subquery) -> Subquery:
    """(day, member_id, staff_userid): who is a member of each observed day."""
    present = and_(
        enrolled.c.joined_at < days.c.ends,
        or_(enrolled.c.left_at.is_(None), enrolled.c.left_at > days.c.starts),
    )
    return (
        select(
            days.c.day, days.c.starts, days.c.ends, enrolled.c.member_id, enrolled.c.staff_userid
        )
        .select_from(days.join(enrolled, present))
        .subquery("roster")
    )


def count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def entry_join(
    entry: Any, roster: Subquery, cohort_id: int, kind: EntryKind
) -> ColumnElement[bool]:
    return and_(
        entry.member_id == roster.c.member_id,
        entry.cohort_id == cohort_id,
        entry.day == roster.c.day,
        entry.kind == kind.value,
    )


@dataclass(frozen=True, slots=True)
class Entries:
    """The roster joined to each member's check-in and homework entry of that day."""

    source: Any
    checkin: Any
    homework: Any

    def checked(self) -> ColumnElement[bool]:
        return self.checkin.status.in_(DONE)  # type: ignore[no-any-return]

    def submitted(self) -> ColumnElement[bool]:
        return self.homework.status.in_(DONE)  # type: ignore[no-any-return]

    def on_leave(self) -> ColumnElement[bool]:
        return self.checkin.status == EntryStatus.LEAVE.value  # type: ignore[no-any-return]


def with_entries(roster: Subquery, cohort_id: int) -> Entries:
    checkin = aliased(CheckinEntry)
    homework = aliased(CheckinEntry)
    source = roster.outerjoin(
        checkin, entry_join(checkin, roster, cohort_id, EntryKind.CHECKIN)
    ).outerjoin(homework, entry_join(homework, roster, cohort_id, EntryKind.HOMEWORK))
    return Entries(source, checkin, homework)
