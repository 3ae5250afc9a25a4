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
"""

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
    distinct,
    func,
    join,
    literal,
    null,
    or_,
    select,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.admin.common import get_or_404
from app.admin.errors import InvalidInput
from app.admin.models import Cohort, CohortGroup, CohortMember, MemberTag
from app.db import UTCDateTime
from app.models import Group, GroupMembership, Member, MemberStatus
from bots.checkin.models import CheckinEntry, CheckinRule, EntryKind, EntryStatus, MemberScore
from bots.xibao.models import Achievement, AchievementStatus

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


def _days_table(windows: Sequence[DayWindow]) -> CTE:
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


def _enrolled(cohort_id: int) -> Subquery:
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


def _roster(days: CTE, enrolled: Subquery) -> Subquery:
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


def _count_if(condition: ColumnElement[bool]) -> ColumnElement[Any]:
    return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)


def _entry_join(
    entry: Any, roster: Subquery, cohort_id: int, kind: EntryKind
) -> ColumnElement[bool]:
    return and_(
        entry.member_id == roster.c.member_id,
        entry.cohort_id == cohort_id,
        entry.day == roster.c.day,
        entry.kind == kind.value,
    )


@dataclass(frozen=True, slots=True)
class _Entries:
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


def _with_entries(roster: Subquery, cohort_id: int) -> _Entries:
    checkin = aliased(CheckinEntry)
    homework = aliased(CheckinEntry)
    source = roster.outerjoin(
        checkin, _entry_join(checkin, roster, cohort_id, EntryKind.CHECKIN)
    ).outerjoin(homework, _entry_join(homework, roster, cohort_id, EntryKind.HOMEWORK))
    return _Entries(source, checkin, homework)


# --- per day ----------------------------------------------------------------------------------


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
    enrolled = _enrolled(cohort_id)
    roster = _roster(days, enrolled)
    e = _with_entries(roster, cohort_id)
    counted = select(
        roster.c.day,
        func.count(),
        _count_if(e.checked()),
        _count_if(e.on_leave()),
        _count_if(e.submitted()),
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


# --- drop-off ---------------------------------------------------------------------------------


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
    roster = _roster(days, _enrolled(calendar.cohort.id))
    e = _with_entries(roster, calendar.cohort.id)
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


# --- streaks ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StreakBucket:
    label: str
    lowest: int
    highest: int | None
    current: int  # members whose current streak is in the bucket
    best: int  # members whose best streak is in the bucket


def _bucket_of(value: ColumnElement[Any]) -> ColumnElement[Any]:
    whens = [
        (value <= highest, index)
        for index, (_, highest, _) in enumerate(STREAK_BUCKETS)
        if highest is not None
    ]
    return case(*whens, else_=len(STREAK_BUCKETS) - 1)


def _current_streak(score: Any, cohort_id: int, ref_day: int) -> ColumnElement[Any]:
    """The stored streak while unbroken at `ref_day` (请假 days in between pause it)."""
    leaves = (
        select(func.count())
        .where(
            CheckinEntry.member_id == score.member_id,
            CheckinEntry.cohort_id == cohort_id,
            CheckinEntry.kind == EntryKind.CHECKIN.value,
            CheckinEntry.status == EntryStatus.LEAVE.value,
            CheckinEntry.day > score.streak_day,
            CheckinEntry.day < ref_day,
        )
        .scalar_subquery()
    )
    alive = or_(score.streak_day >= ref_day - 1, leaves == ref_day - 1 - score.streak_day)
    return func.coalesce(case((alive, score.streak), else_=0), 0)


async def streaks(*, session: AsyncSession, calendar: CampCalendar) -> list[StreakBucket]:
    cohort_id = calendar.cohort.id
    ref_day = min(calendar.today, calendar.total_days)  # after the end: as of the last day
    score = aliased(MemberScore)
    members = join(
        CohortMember,
        score,
        and_(score.member_id == CohortMember.member_id, score.cohort_id == cohort_id),
        isouter=True,
    )
    counts: list[dict[int, int]] = []
    for value in (
        _current_streak(score, cohort_id, ref_day),
        func.coalesce(score.best_streak, 0),
    ):
        # Bucketed in a subquery: PostgreSQL would not match a GROUP BY expression whose
        # bound parameters are numbered apart from the selected one.
        values = (
            select(_bucket_of(value).label("bucket"))
            .select_from(members)
            .where(CohortMember.cohort_id == cohort_id)
            .subquery()
        )
        query = select(values.c.bucket, func.count()).group_by(values.c.bucket)
        counts.append({int(k): int(v) for k, v in await session.execute(query)})
    by_current, by_best = counts
    return [
        StreakBucket(label, low, high, int(by_current.get(i, 0)), int(by_best.get(i, 0)))
        for i, (low, high, label) in enumerate(STREAK_BUCKETS)
    ]


# --- per group and per assistant --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SliceStats:
    """One group's or one assistant's students: on the latest observed day and overall."""

    key: str  # group id or assistant userid ("" = no assistant)
    members: int  # members on the latest observed day
    checked_in_today: int
    member_days: int  # sum over observed days of that day's members
    checkins: int  # sum over observed days of that day's checked_in
    homework_submitted: int

    @property
    def checkin_rate_today(self) -> float:
        return rate(self.checked_in_today, self.members)

    @property
    def checkin_rate(self) -> float:
        return rate(self.checkins, self.member_days)

    @property
    def homework_rate(self) -> float:
        return rate(self.homework_submitted, self.member_days)


@dataclass(frozen=True, slots=True)
class GroupStats:
    group_id: int
    name: str | None
    channel: str
    figures: SliceStats


def _slice_columns(e: _Entries, day: ColumnElement[Any], latest: int) -> list[Any]:
    today = day == latest
    return [
        _count_if(today),
        _count_if(and_(today, e.checked())),
        func.count(),
        _count_if(e.checked()),
        _count_if(e.submitted()),
    ]


def _slice(key: object, row: Sequence[Any] | None) -> SliceStats:
    values = [int(v) for v in row] if row else [0, 0, 0, 0, 0]
    return SliceStats("" if key is None else str(key), *values)


async def group_stats(
    *, session: AsyncSession, calendar: CampCalendar, days: CTE | None
) -> list[GroupStats]:
    cohort_id = calendar.cohort.id
    groups = (
        await session.execute(
            select(Group.id, Group.name, Group.channel)
            .join(CohortGroup, CohortGroup.group_id == Group.id)
            .where(CohortGroup.cohort_id == cohort_id)
            .order_by(Group.id)
        )
    ).all()
    figures: dict[int, Sequence[Any]] = {}
    if days is not None and calendar.latest_day is not None and groups:
        roster = _roster(days, _enrolled(cohort_id))
        e = _with_entries(roster, cohort_id)
        in_group = and_(
            GroupMembership.member_id == roster.c.member_id,
            GroupMembership.joined_at < roster.c.ends,
            or_(GroupMembership.left_at.is_(None), GroupMembership.left_at > roster.c.starts),
        )
        query = (
            select(
                GroupMembership.group_id,
                *_slice_columns(e, roster.c.day, calendar.latest_day),
            )
            .select_from(e.source.join(GroupMembership, in_group))
            .join(CohortGroup, CohortGroup.group_id == GroupMembership.group_id)
            .where(CohortGroup.cohort_id == cohort_id)
            .group_by(GroupMembership.group_id)
        )
        figures = {row[0]: row[1:] for row in await session.execute(query)}
    return [
        GroupStats(gid, name, channel, _slice(gid, figures.get(gid)))
        for gid, name, channel in groups
    ]


async def assistant_stats(
    *, session: AsyncSession, calendar: CampCalendar, days: CTE | None
) -> list[SliceStats]:
    """Per `Member.staff_userid` (the staff account the student added); "" = none."""
    if days is None or calendar.latest_day is None:
        return []
    roster = _roster(days, _enrolled(calendar.cohort.id))
    e = _with_entries(roster, calendar.cohort.id)
    query = (
        select(roster.c.staff_userid, *_slice_columns(e, roster.c.day, calendar.latest_day))
        .select_from(e.source)
        .group_by(roster.c.staff_userid)
    )
    slices = [_slice(row[0], row[1:]) for row in await session.execute(query)]
    return sorted(slices, key=lambda s: s.key)


# --- participation, 全勤, 上岸 ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Participation:
    cohort_id: int
    day: int
    kind: EntryKind
    group_id: int | None
    group_members: int
    participants: int

    @property
    def participation_rate(self) -> float:
        return rate(self.participants, self.group_members)


async def participation(
    *,
    session: AsyncSession,
    cohort_id: int,
    day: int,
    kind: EntryKind,
    group_id: int | None,
    now: datetime,
) -> Participation:
    calendar = await load_calendar(session=session, cohort_id=cohort_id, now=now)
    if day > calendar.total_days:
        raise InvalidInput("day", f"这一期只有第 0–{calendar.total_days} 天。")
    if group_id is not None:
        await _require_cohort_group(session=session, cohort_id=cohort_id, group_id=group_id)
    window = day_window(calendar.cohort, calendar.boundary, day)
    submitted = (
        select(CheckinEntry.id)
        .where(
            CheckinEntry.member_id == GroupMembership.member_id,
            CheckinEntry.cohort_id == cohort_id,
            CheckinEntry.day == day,
            CheckinEntry.kind == kind.value,
            CheckinEntry.status.in_(DONE),
        )
        .exists()
    )
    staff = and_(Member.userid.is_not(None), Member.external_userid.is_(None))
    query = (
        select(
            func.count(distinct(GroupMembership.member_key)),
            func.count(distinct(case((submitted, GroupMembership.member_key)))),
        )
        .select_from(GroupMembership)
        .join(CohortGroup, CohortGroup.group_id == GroupMembership.group_id)
        .outerjoin(Member, Member.id == GroupMembership.member_id)
        .where(
            CohortGroup.cohort_id == cohort_id,
            GroupMembership.joined_at < window.ends,
            or_(GroupMembership.left_at.is_(None), GroupMembership.left_at > window.starts),
            or_(Member.id.is_(None), ~staff),
        )
    )
    if group_id is not None:
        query = query.where(GroupMembership.group_id == group_id)
    members, participants = (await session.execute(query)).one()
    return Participation(cohort_id, day, kind, group_id, int(members), int(participants))


async def _require_cohort_group(*, session: AsyncSession, cohort_id: int, group_id: int) -> None:
    linked = await session.scalar(
        select(CohortGroup.group_id).where(
            CohortGroup.group_id == group_id, CohortGroup.cohort_id == cohort_id
        )
    )
    if linked is None:
        raise InvalidInput("group_id", f"群 {group_id} 不属于这一期。")


async def full_attendance(*, session: AsyncSession, calendar: CampCalendar) -> int:
    """Members checked in (on time or 补卡) on every completed day (today is still open)."""
    last_complete = min(calendar.today - 1, calendar.total_days)
    if last_complete < 0:
        return 0
    every_day = (
        select(CheckinEntry.member_id)
        .where(
            CheckinEntry.cohort_id == calendar.cohort.id,
            CheckinEntry.kind == EntryKind.CHECKIN.value,
            CheckinEntry.status.in_(DONE),
            CheckinEntry.day.between(0, last_complete),
        )
        .group_by(CheckinEntry.member_id)
        .having(func.count() == last_complete + 1)
        .subquery()
    )
    return int(await session.scalar(select(func.count()).select_from(every_day)) or 0)


async def landed_count(*, session: AsyncSession, cohort_id: int) -> int:
    """Members of the cohort who reached the goal: an approved 喜报 achievement recorded in
    this cohort, or the member tag 上岸 (for results recorded without a 喜报)."""
    member = CohortMember.member_id
    achieved = (
        select(Achievement.id)
        .where(
            Achievement.member_id == member,
            Achievement.cohort_id == cohort_id,
            Achievement.status == AchievementStatus.APPROVED.value,
        )
        .exists()
    )
    tagged = (
        select(MemberTag.member_id)
        .where(MemberTag.member_id == member, MemberTag.tag == LANDED_TAG)
        .exists()
    )
    query = select(func.count()).where(CohortMember.cohort_id == cohort_id, or_(achieved, tagged))
    return int(await session.scalar(query) or 0)


# --- everything at once -----------------------------------------------------------------------


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


def default_base_day(cohort: Cohort) -> int:
    return min(DEFAULT_BASE_DAY, cohort.days)


async def cohort_stats(
    *, session: AsyncSession, cohort_id: int, now: datetime, base_day: int | None = None
) -> CohortStats:
    """Every figure of one cohort as of `now` (see the module docstring for definitions)."""
    calendar = await load_calendar(session=session, cohort_id=cohort_id, now=now)
    if base_day is None:
        base_day = default_base_day(calendar.cohort)
    elif base_day > calendar.total_days:
        raise InvalidInput("base_day", f"这一期只有第 0–{calendar.total_days} 天。")
    # Before 开营 nothing has been observed: no days, every group and assistant at zero.
    table = _days_table(calendar.windows) if calendar.windows else None
    days = (
        await day_stats(session=session, calendar=calendar, days=table)
        if table is not None
        else []
    )
    groups = await group_stats(session=session, calendar=calendar, days=table)
    assistants = await assistant_stats(session=session, calendar=calendar, days=table)
    enrolled = await session.scalar(
        select(func.count()).select_from(CohortMember).where(CohortMember.cohort_id == cohort_id)
    )
    return CohortStats(
        calendar=calendar,
        days=days,
        dropoff=await dropoff(session=session, calendar=calendar, days=table, base_day=base_day),
        streaks=await streaks(session=session, calendar=calendar),
        groups=groups,
        assistants=assistants,
        enrolled=int(enrolled or 0),
        full_attendance=await full_attendance(session=session, calendar=calendar),
        landed=await landed_count(session=session, cohort_id=cohort_id),
    )
