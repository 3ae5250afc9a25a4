"""What reminders, the leaderboard and scheduled scripts say about check-ins: a member's
streak, points, rank, link and assistant; the cohort's leaderboard and the day's counts."""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.h5_tokens import h5_url, tokens_for
from app.admin.models import Cohort, CohortMember
from app.models import Member, MemberStatus
from bots.checkin import service
from bots.checkin.models import CheckinEntry, EntryKind, EntryStatus, MemberScore
from bots.checkin.scoring import current_streak
from scripts_library.variables import LeaderboardEntry, RenderContext, zh_date, zh_weekday

LEADERBOARD_SIZE = 10
FALLBACK_NAME = "同学"
FALLBACK_ASSISTANT = "助教老师"
# 请假 counts: a student on leave is not to be nagged.
DONE = (EntryStatus.ON_TIME, EntryStatus.MAKEUP, EntryStatus.LEAVE)
CHECKED = (EntryStatus.ON_TIME, EntryStatus.MAKEUP)


def checked_in(cohort_id: int, day: int) -> ColumnElement[bool]:
    """EXISTS a check-in (or leave) of the outer query's Member for that camp day."""
    return exists().where(
        CheckinEntry.cohort_id == cohort_id,
        CheckinEntry.day == day,
        CheckinEntry.kind == EntryKind.CHECKIN,
        CheckinEntry.member_id == Member.id,
        CheckinEntry.status.in_(DONE),
    )


def base_context(cohort: Cohort, today: service.CampDay) -> dict[str, object]:
    assert today.day is not None
    assert today.date is not None
    return {
        "cohort_name": cohort.name,
        "camp_name": cohort.camp,
        "total_days": cohort.days,
        "day": today.day,
        "date": zh_date(today.date),
        "weekday": zh_weekday(today.date),
    }


async def member_ranks(
    session: AsyncSession, cohort_id: int, member_ids: Sequence[int], today: int
) -> dict[int, tuple[int, int, int]]:
    """(points, current streak, rank) per member; ties share a rank (1 + how many have more)."""
    rows = (
        await session.execute(
            select(
                MemberScore.member_id,
                MemberScore.points,
                MemberScore.streak,
                MemberScore.streak_day,
            ).where(MemberScore.cohort_id == cohort_id)
        )
    ).all()
    # One read of the cohort's scores (hundreds of rows) serves every member's rank.
    ascending = sorted(row.points for row in rows)
    scores = {row.member_id: row for row in rows}
    found: dict[int, tuple[int, int, int]] = {}
    for member_id in member_ids:
        row = scores.get(member_id)
        points = row.points if row is not None else 0
        streak = (
            current_streak(streak=row.streak, streak_day=row.streak_day, today=today)
            if row is not None
            else 0
        )
        rank = 1 + len(ascending) - bisect.bisect_right(ascending, points)
        found[member_id] = (points, streak, rank)
    return found


async def staff_names(session: AsyncSession, userids: Iterable[str | None]) -> dict[str, str]:
    """Staff members' names by userid, for those CampBot has a named member row of."""
    wanted = {u for u in userids if u}
    if not wanted:
        return {}
    rows = await session.execute(
        select(Member.userid, Member.name).where(
            Member.userid.in_(wanted), Member.name.is_not(None)
        )
    )
    return {str(userid): str(name) for userid, name in rows.all()}


async def assistant_names(session: AsyncSession, members: Sequence[Member]) -> dict[str, str]:
    """The names of the staff members these students added (their assistants)."""
    return await staff_names(session, (m.staff_userid for m in members))


async def member_contexts(
    *,
    session: AsyncSession,
    cohort: Cohort,
    members: Sequence[Member],
    now: datetime,
    public_base_url: str,
) -> dict[int, RenderContext]:
    """What the personal reminder says to each member: name, streak, points, rank, link.

    A handful of queries for any number of members (the schedule runner's per-member hook
    can call it with a firing's members)."""
    today = await service.camp_day(session=session, cohort_id=cohort.id, now=now)
    if today.day is None:
        return {}
    ids = [m.id for m in members]
    ranks = await member_ranks(session, cohort.id, ids, today.day)
    tokens = await tokens_for(session=session, member_ids=ids, now=now)
    assistants = await assistant_names(session, members)
    base = base_context(cohort, today)
    contexts = {}
    for member in members:
        points, streak, rank = ranks[member.id]
        contexts[member.id] = RenderContext(
            **base,  # type: ignore[arg-type]
            student_name=member.name or FALLBACK_NAME,
            streak=streak,
            points=points,
            rank=rank,
            h5_url=h5_url(public_base_url, tokens[member.id]),
            assistant_name=assistants.get(member.staff_userid or "", FALLBACK_ASSISTANT),
        )
    return contexts


@dataclass(frozen=True, slots=True)
class DayCounts:
    checkin_count: int
    unchecked_count: int


async def day_counts(*, session: AsyncSession, cohort_id: int, day: int) -> DayCounts:
    """Today's checked-in (on time or 补卡) and not-yet (no entry, no leave) active members."""
    base = (
        select(func.count())
        .select_from(Member)
        .join(CohortMember, CohortMember.member_id == Member.id)
        .where(CohortMember.cohort_id == cohort_id, Member.status == MemberStatus.ACTIVE)
    )
    checked = exists().where(
        CheckinEntry.cohort_id == cohort_id,
        CheckinEntry.day == day,
        CheckinEntry.kind == EntryKind.CHECKIN,
        CheckinEntry.member_id == Member.id,
        CheckinEntry.status.in_(CHECKED),
    )
    done = await session.scalar(base.where(checked))
    missing = await session.scalar(base.where(~checked_in(cohort_id, day)))
    return DayCounts(int(done or 0), int(missing or 0))


async def group_context(
    *, session: AsyncSession, cohort: Cohort, now: datetime
) -> dict[str, object] | None:
    """The leaderboard variables of a cohort now (`leaderboard`, `checkin_count`,
    `unchecked_count` and the day's), or None outside the camp."""
    today = await service.camp_day(session=session, cohort_id=cohort.id, now=now)
    if today.day is None:
        return None
    board = await service.leaderboard(
        session=session, cohort_id=cohort.id, limit=LEADERBOARD_SIZE, now=now
    )
    counts = await day_counts(session=session, cohort_id=cohort.id, day=today.day)
    return base_context(cohort, today) | {
        "leaderboard": tuple(LeaderboardEntry(row.name, row.points) for row in board),
        "checkin_count": counts.checkin_count,
        "unchecked_count": counts.unchecked_count,
    }
