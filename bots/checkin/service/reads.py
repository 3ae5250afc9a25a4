"""Reads: a member's standing and page, the leaderboard, who has not checked in today, a
cohort's rules."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import and_, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.common import get_or_404
from app.admin.models import Cohort, CohortMember
from app.models import GroupMembership, Member, MemberStatus
from bots.checkin import store
from bots.checkin.models import CheckinEntry, CheckinRule, EntryKind, EntryStatus, MemberScore
from bots.checkin.rules import RuleSet, day_index, load_rules
from bots.checkin.scoring import current_streak
from bots.checkin.service.place import Where, camp_day_of, locate, standing_of
from bots.checkin.service.values import (
    FALLBACK_NAME,
    LeaderRow,
    MemberPage,
    Standing,
    entry_view,
    makeup_window,
)


async def standing(*, session: AsyncSession, member_id: int, now: datetime) -> Standing:
    """The member's streak, points and rank now (zeros before their first entry)."""
    where = await locate(session, member_id, now)
    score = where.score
    return await standing_of(session, where, score)


async def member_page(*, session: AsyncSession, member_id: int, now: datetime) -> MemberPage:
    """The check-ins part of the personal page."""
    where = await locate(session, member_id, now)
    cohort = where.cohort
    entries = await store.entries_of(session=session, member_id=member_id, cohort_id=cohort.id)
    today_entries = {EntryKind(e.kind): e for e in entries if e.day == where.today}
    history = {e.day: EntryStatus(e.status) for e in entries if e.kind == EntryKind.CHECKIN}
    score = where.score
    current = await standing_of(session, where, score)
    day = camp_day_of(cohort, where.today)
    name = where.member.name or FALLBACK_NAME
    checkin = today_entries.get(EntryKind.CHECKIN)
    homework = today_entries.get(EntryKind.HOMEWORK)
    return MemberPage(
        member_id=member_id,
        member_name=name,
        cohort_id=cohort.id,
        cohort_name=cohort.name,
        camp_name=cohort.camp,
        camp_day=day,
        checkin=entry_view(checkin) if checkin is not None and day.day is not None else None,
        homework=entry_view(homework) if homework is not None and day.day is not None else None,
        standing=current,
        leaderboard=await _board(
            session, cohort.id, limit=10, group_id=None, today=min(where.today, cohort.days + 1)
        ),
        makeup_days=_open_makeup_days(where, history),
        leave_left=max(0, where.rules.leave_limit - _leaves(history)),
        history=history,
        timezone=cohort.timezone or "",
        start_date=cohort.start_date,
        channel_state=cohort.channel_state,
    )


def _leaves(history: dict[int, EntryStatus]) -> int:
    return sum(1 for status in history.values() if status == EntryStatus.LEAVE)


def _open_makeup_days(where: Where, history: dict[int, EntryStatus]) -> tuple[int, ...]:
    low, high = makeup_window(where.cohort.days, where.today, where.rules.makeup_days)
    return tuple(d for d in range(low, high + 1) if d not in history)


async def leaderboard(
    *,
    session: AsyncSession,
    cohort_id: int,
    limit: int = 10,
    group_id: int | None = None,
    now: datetime | None = None,  # given: streaks as of now (a stored streak may be broken)
) -> tuple[LeaderRow, ...]:
    """The top `limit` by points (ties share a rank, then by member id); within one group's
    current members when `group_id` is given (ranks then count within the group)."""
    today = await _today_or_none(session, cohort_id, now)
    return await _board(session, cohort_id, limit=limit, group_id=group_id, today=today)


# Built once (see `WHERE`): the leaderboard is on every page view.
_BOARD = (
    select(MemberScore, Member.name)
    .join(Member, Member.id == MemberScore.member_id)
    .where(MemberScore.cohort_id == bindparam("cohort_id"))
    .order_by(MemberScore.points.desc(), MemberScore.member_id)
    .limit(bindparam("limit"))
)
_GROUP_BOARD = _BOARD.where(
    exists().where(
        GroupMembership.group_id == bindparam("group_id"),
        GroupMembership.member_id == MemberScore.member_id,
        GroupMembership.left_at.is_(None),
    )
)


async def _board(
    session: AsyncSession, cohort_id: int, *, limit: int, group_id: int | None, today: int | None
) -> tuple[LeaderRow, ...]:
    params = {"cohort_id": cohort_id, "limit": limit, "group_id": group_id}
    statement = _BOARD if group_id is None else _GROUP_BOARD
    rows = (await session.execute(statement, params)).all()
    board: list[LeaderRow] = []
    for position, (score, name) in enumerate(rows, start=1):
        rank = board[-1].rank if board and board[-1].points == score.points else position
        streak = score.streak
        if today is not None:
            streak = current_streak(streak=score.streak, streak_day=score.streak_day, today=today)
        board.append(LeaderRow(rank, score.member_id, name or FALLBACK_NAME, score.points, streak))
    return tuple(board)


async def _today_or_none(
    session: AsyncSession, cohort_id: int, now: datetime | None
) -> int | None:
    if now is None:
        return None
    cohort = await session.get(Cohort, cohort_id)
    if cohort is None:
        return None
    rules = await load_rules(session=session, cohort_id=cohort_id)
    return min(day_index(cohort, now=now, boundary=rules.day_boundary), cohort.days + 1)


async def not_checked_in(*, session: AsyncSession, cohort_id: int, now: datetime) -> list[int]:
    """Member ids of the cohort's active members with no check-in (nor leave) today."""
    today = await _today_or_none(session, cohort_id, now)
    cohort = await session.get(Cohort, cohort_id)
    if today is None or cohort is None or not 0 <= today <= cohort.days:
        return []
    done = exists().where(
        and_(
            CheckinEntry.member_id == CohortMember.member_id,
            CheckinEntry.cohort_id == cohort_id,
            CheckinEntry.day == today,
            CheckinEntry.kind == EntryKind.CHECKIN,
        )
    )
    statement = (
        select(CohortMember.member_id)
        .join(Member, Member.id == CohortMember.member_id)
        .where(CohortMember.cohort_id == cohort_id, Member.status == MemberStatus.ACTIVE, ~done)
        .order_by(CohortMember.member_id)
    )
    return list((await session.execute(statement)).scalars())


async def rules_in_force(*, session: AsyncSession, cohort_id: int) -> tuple[RuleSet, bool]:
    """A cohort's check-in rules, and whether they are its own (False: the defaults apply).
    404 for an unknown cohort."""
    await get_or_404(Cohort, cohort_id, session=session, what="训练营期次")
    customized = await session.get(CheckinRule, cohort_id) is not None
    return await load_rules(session=session, cohort_id=cohort_id), customized
