"""Where a member stands: their current cohort, its rules and today's camp day (one
statement: every page view and submission starts here), and their standing in it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort, CohortMember
from app.models import Member
from bots.checkin import store
from bots.checkin.models import CheckinRule, MemberScore
from bots.checkin.rules import RuleSet, date_of, day_index, load_rules, rule_set
from bots.checkin.scoring import current_streak
from bots.checkin.service.values import CampDay, CheckinError, Standing


@dataclass(frozen=True, slots=True)
class Where:
    """A member's cohort, its rules and today's unclamped day index."""

    member: Member
    cohort: Cohort
    rules: RuleSet
    today: int
    score: MemberScore | None = None  # as read with the rest, unlocked (None: no entry yet)

    @property
    def open_today(self) -> bool:
        return 0 <= self.today <= self.cohort.days


def latest_cohort_id(member_id: Any) -> Any:
    return (
        select(CohortMember.cohort_id)
        .where(CohortMember.member_id == member_id)
        .order_by(CohortMember.joined_at.desc(), CohortMember.id.desc())
        .limit(1)
        .scalar_subquery()
    )


# The member, their current cohort (as `member_cohort` picks it), its rules row and the
# member's score row there, in one statement: every page view and submission starts here.
# Built once (the hot path then skips building it and computing its cache key); the member
# id is a bound parameter.
WHERE = (
    select(Member, Cohort, CheckinRule, MemberScore)
    .select_from(Member)
    .outerjoin(Cohort, Cohort.id == latest_cohort_id(bindparam("member_id")))
    .outerjoin(CheckinRule, CheckinRule.cohort_id == Cohort.id)
    .outerjoin(
        MemberScore,
        (MemberScore.member_id == Member.id) & (MemberScore.cohort_id == Cohort.id),
    )
    .where(Member.id == bindparam("member_id"))
)


async def locate(session: AsyncSession, member_id: int, now: datetime) -> Where:
    row = (await session.execute(WHERE, {"member_id": member_id})).first()
    if row is None or row[1] is None:
        raise CheckinError("你还没有加入训练营，暂时不能打卡。")
    member, cohort, rules = row[0], row[1], rule_set(row[2])
    today = day_index(cohort, now=now, boundary=rules.day_boundary)
    return Where(member, cohort, rules, today, score=row[3])


def camp_day_of(cohort: Cohort, today: int) -> CampDay:
    inside = 0 <= today <= cohort.days
    return CampDay(
        cohort_id=cohort.id,
        day=today if inside else None,
        date=date_of(cohort, today) if inside else None,
        total_days=cohort.days,
    )


async def camp_day(*, session: AsyncSession, cohort_id: int, now: datetime) -> CampDay:
    cohort = await session.get(Cohort, cohort_id)
    if cohort is None:
        raise CheckinError("这个训练营期次不存在。")
    rules = await load_rules(session=session, cohort_id=cohort_id)
    return camp_day_of(cohort, day_index(cohort, now=now, boundary=rules.day_boundary))


async def member_cohort(*, session: AsyncSession, member_id: int) -> int | None:
    """The member's current cohort id (latest joined), or None."""
    return await session.scalar(select(latest_cohort_id(member_id)))


async def standing_of(session: AsyncSession, where: Where, score: MemberScore | None) -> Standing:
    points = score.points if score is not None else 0
    streak = 0
    if score is not None:
        today = min(where.today, where.cohort.days + 1)
        streak = current_streak(streak=score.streak, streak_day=score.streak_day, today=today)
    rank, size = await store.rank_and_size(
        session=session, cohort_id=where.cohort.id, points=points
    )
    return Standing(
        points=points,
        streak=streak,
        best_streak=score.best_streak if score is not None else 0,
        checked_days=score.checked_days if score is not None else 0,
        homework_days=score.homework_days if score is not None else 0,
        rank=rank,
        cohort_size=size,
    )
