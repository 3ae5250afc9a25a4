"""Row access for check-ins: entries, the score row kept current, ranks.

Functions flush but never commit: the caller's transaction (an H5 request, a dispatcher
event) is the unit of work, so an entry and its score land together or not at all.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import CohortMember
from app.db import dialect_insert
from bots.checkin.models import CheckinEntry, EntryKind, EntryStatus, MemberScore
from bots.checkin.rules import RuleSet
from bots.checkin.scoring import EntryFact, Tally, tally

# Built once: the statements of every page view and submission (see `service.place.WHERE`).
_ENTRIES_OF = (
    select(CheckinEntry)
    .where(
        CheckinEntry.member_id == bindparam("member_id"),
        CheckinEntry.cohort_id == bindparam("cohort_id"),
    )
    .order_by(CheckinEntry.day, CheckinEntry.kind)
)
_RANK_AND_SIZE = select(
    select(func.count())
    .where(
        MemberScore.cohort_id == bindparam("cohort_id"),
        MemberScore.points > bindparam("points"),
    )
    .scalar_subquery(),
    select(func.count()).where(CohortMember.cohort_id == bindparam("cohort_id")).scalar_subquery(),
)


async def entries_of(
    *, session: AsyncSession, member_id: int, cohort_id: int
) -> list[CheckinEntry]:
    params = {"member_id": member_id, "cohort_id": cohort_id}
    return list((await session.execute(_ENTRIES_OF, params)).scalars())


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


async def insert_new_entry(
    *, session: AsyncSession, values: dict[str, Any]
) -> CheckinEntry | None:
    """Insert an entry unless the member already has one for that day and kind; the new
    row, or None when one exists (a concurrent submission may have just made it), so the
    caller edits that row instead. One statement: no savepoint, no separate SELECT first."""
    insert = dialect_insert(session)
    statement = (
        insert(CheckinEntry)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["member_id", "cohort_id", "day", "kind"])
        .returning(CheckinEntry)
    )
    return (await session.scalars(statement)).one_or_none()


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
    score: MemberScore | None = None,
) -> tuple[MemberScore, Tally]:
    """Recompute the member's score row from all their entries in this cohort. `score`: the
    row when the caller already holds it from `lock_score` in this transaction."""
    entries = await entries_of(session=session, member_id=member_id, cohort_id=cohort_id)
    result = tally(facts(entries), rules=rules, today=today, total_days=total_days)
    if score is None:
        score = await lock_score(
            session=session, member_id=member_id, cohort_id=cohort_id, now=now
        )
    score.points = result.points
    score.streak = result.streak
    score.streak_day = result.streak_day
    score.best_streak = result.best_streak
    score.checked_days = result.checked_days
    score.homework_days = result.homework_days
    score.updated_at = now
    await session.flush()
    return score, result


async def rank_of(*, session: AsyncSession, cohort_id: int, points: int) -> int:
    """1 + members with more points (ties share a rank): one count on the (cohort, points)
    index."""
    above = await session.scalar(
        select(func.count()).where(MemberScore.cohort_id == cohort_id, MemberScore.points > points)
    )
    return int(above or 0) + 1


async def rank_and_size(*, session: AsyncSession, cohort_id: int, points: int) -> tuple[int, int]:
    """(`rank_of`, the cohort's member count) in one statement."""
    params = {"cohort_id": cohort_id, "points": points}
    row = (await session.execute(_RANK_AND_SIZE, params)).one()
    return int(row[0] or 0) + 1, int(row[1] or 0)


async def lock_score(
    *, session: AsyncSession, member_id: int, cohort_id: int, now: datetime
) -> MemberScore:
    """The member's score row, created if missing and locked (a row lock on PostgreSQL;
    SQLite's writer lock serializes anyway), so two submissions by one member at once are
    taken one after the other and each recompute sees the other's entry."""
    # One statement, new row or not: an upsert whose update changes nothing still takes the
    # row lock (PostgreSQL's ON CONFLICT DO UPDATE locks like FOR UPDATE), and RETURNING
    # reads the row, so no savepoint, no SELECT before and no SELECT after.
    insert = dialect_insert(session)
    statement = insert(MemberScore).values(
        member_id=member_id, cohort_id=cohort_id, updated_at=now
    )
    statement = statement.on_conflict_do_update(
        index_elements=["member_id", "cohort_id"],
        set_={"updated_at": MemberScore.updated_at},
    ).returning(MemberScore)
    score: MemberScore = (
        await session.scalars(statement, execution_options={"populate_existing": True})
    ).one()
    return score
