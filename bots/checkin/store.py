"""Row access for check-ins: entries, the score row kept current, ranks.

Functions flush but never commit: the caller's transaction (an H5 request, a dispatcher
event) is the unit of work, so an entry and its score land together or not at all.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from bots.checkin.models import CheckinEntry, EntryKind, EntryStatus, MemberScore
from bots.checkin.rules import RuleSet
from bots.checkin.scoring import EntryFact, Tally, tally


async def entries_of(
    *, session: AsyncSession, member_id: int, cohort_id: int
) -> list[CheckinEntry]:
    statement = (
        select(CheckinEntry)
        .where(CheckinEntry.member_id == member_id, CheckinEntry.cohort_id == cohort_id)
        .order_by(CheckinEntry.day, CheckinEntry.kind)
    )
    return list((await session.execute(statement)).scalars())


async def find_entry(
    *, session: AsyncSession, member_id: int, cohort_id: int, day: int, kind: EntryKind
) -> CheckinEntry | None:
    statement = select(CheckinEntry).where(
        CheckinEntry.member_id == member_id,
        CheckinEntry.cohort_id == cohort_id,
        CheckinEntry.day == day,
        CheckinEntry.kind == kind,
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def insert_entry(*, session: AsyncSession, entry: CheckinEntry) -> CheckinEntry | None:
    """Insert in a savepoint; None when a concurrent submission inserted the same day first
    (the unique key), so the caller edits that row instead of failing the request."""
    try:
        async with session.begin_nested():
            session.add(entry)
            await session.flush()
    except IntegrityError:
        return None
    return entry


async def count_leaves(*, session: AsyncSession, member_id: int, cohort_id: int) -> int:
    total = await session.scalar(
        select(func.count()).where(
            CheckinEntry.member_id == member_id,
            CheckinEntry.cohort_id == cohort_id,
            CheckinEntry.kind == EntryKind.CHECKIN,
            CheckinEntry.status == EntryStatus.LEAVE,
        )
    )
    return int(total or 0)


def facts(entries: list[CheckinEntry]) -> list[EntryFact]:
    return [EntryFact(e.day, EntryKind(e.kind), EntryStatus(e.status), e.points) for e in entries]


async def recompute(
    *,
    session: AsyncSession,
    member_id: int,
    cohort_id: int,
    rules: RuleSet,
    today: int,
    total_days: int,
    now: datetime,
) -> tuple[MemberScore, Tally]:
    """Recompute the member's score row from all their entries in this cohort."""
    entries = await entries_of(session=session, member_id=member_id, cohort_id=cohort_id)
    result = tally(facts(entries), rules=rules, today=today, total_days=total_days)
    score = await lock_score(session=session, member_id=member_id, cohort_id=cohort_id, now=now)
    score.points = result.points
    score.streak = result.streak
    score.streak_day = result.streak_day
    score.best_streak = result.best_streak
    score.checked_days = result.checked_days
    score.homework_days = result.homework_days
    score.updated_at = now
    await session.flush()
    return score, result


async def _insert_score(session: AsyncSession, score: MemberScore) -> bool:
    try:
        async with session.begin_nested():
            session.add(score)
            await session.flush()
    except IntegrityError:
        return False
    return True


async def rank_of(*, session: AsyncSession, cohort_id: int, points: int) -> int:
    """1 + members with more points (ties share a rank): one count on the (cohort, points)
    index."""
    above = await session.scalar(
        select(func.count()).where(MemberScore.cohort_id == cohort_id, MemberScore.points > points)
    )
    return int(above or 0) + 1


async def lock_score(
    *, session: AsyncSession, member_id: int, cohort_id: int, now: datetime
) -> MemberScore:
    """The member's score row, created if missing and locked (FOR UPDATE on PostgreSQL;
    SQLite's writer lock serializes anyway), so two submissions by one member at once are
    taken one after the other and each recompute sees the other's entry."""
    key = (member_id, cohort_id)
    score = await session.get(MemberScore, key, with_for_update=True)
    if score is None:
        await _insert_score(
            session, MemberScore(member_id=member_id, cohort_id=cohort_id, updated_at=now)
        )
        score = await session.get(MemberScore, key, with_for_update=True, populate_existing=True)
    assert score is not None
    return score
