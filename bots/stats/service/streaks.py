"""Streaks: members per bucket of current (unbroken) and best streak."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, case, func, join, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from app.admin.models import CohortMember
from bots.checkin.models import CheckinEntry, EntryKind, EntryStatus, MemberScore
from bots.stats.service.calendar import STREAK_BUCKETS, CampCalendar


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
