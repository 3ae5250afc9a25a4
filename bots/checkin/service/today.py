"""The 今日 figures of running cohorts: today's camp day (by each cohort's day boundary),
check-ins so far today and all of yesterday, active students, homework waiting for review.
Four queries whatever the number of cohorts (the rules, the check-ins, the students, the
homework)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort, CohortMember
from app.models import Member, MemberStatus
from bots.checkin.models import CheckinEntry, CheckinRule, EntryKind, EntryStatus
from bots.checkin.rules import day_index, rule_set


@dataclass(frozen=True, slots=True)
class CohortToday:
    cohort: Cohort
    day: int  # today's camp day, unclamped
    students: int  # active students enrolled now
    checked_today: int  # check-ins and 补卡 for today's camp day so far
    checked_yesterday: int
    homework_waiting: int  # homework nobody reviewed yet (any day)

    def rate(self, checked: int) -> float | None:
        return checked / self.students if self.students else None


async def cohorts_today(
    *, session: AsyncSession, cohorts: Sequence[Cohort], now: datetime
) -> list[CohortToday]:
    ids = [c.id for c in cohorts]
    if not ids:
        return []
    rules = {
        r.cohort_id: rule_set(r)
        for r in await session.scalars(select(CheckinRule).where(CheckinRule.cohort_id.in_(ids)))
    }
    days = {
        c.id: day_index(c, now=now, boundary=rules.get(c.id, rule_set(None)).day_boundary)
        for c in cohorts
    }
    counted = (EntryStatus.ON_TIME, EntryStatus.MAKEUP)
    checked = {
        (cohort_id, day): int(n)
        for cohort_id, day, n in await session.execute(
            select(CheckinEntry.cohort_id, CheckinEntry.day, func.count())
            .where(
                CheckinEntry.cohort_id.in_(ids),
                CheckinEntry.kind == EntryKind.CHECKIN,
                CheckinEntry.status.in_(counted),
                CheckinEntry.day.in_({d for t in days.values() for d in (t, t - 1)}),
            )
            .group_by(CheckinEntry.cohort_id, CheckinEntry.day)
        )
    }
    students = dict(
        (
            await session.execute(
                select(CohortMember.cohort_id, func.count())
                .join(Member, Member.id == CohortMember.member_id)
                .where(CohortMember.cohort_id.in_(ids), Member.status == MemberStatus.ACTIVE)
                .group_by(CohortMember.cohort_id)
            )
        ).all()
    )
    waiting = dict(
        (
            await session.execute(
                select(CheckinEntry.cohort_id, func.count())
                .where(
                    CheckinEntry.cohort_id.in_(ids),
                    CheckinEntry.kind == EntryKind.HOMEWORK,
                    CheckinEntry.reviewed_at.is_(None),
                )
                .group_by(CheckinEntry.cohort_id)
            )
        ).all()
    )
    return [
        CohortToday(
            cohort=c,
            day=days[c.id],
            students=int(students.get(c.id, 0)),
            checked_today=checked.get((c.id, days[c.id]), 0),
            checked_yesterday=checked.get((c.id, days[c.id] - 1), 0),
            homework_waiting=int(waiting.get(c.id, 0)),
        )
        for c in cohorts
    ]
