"""Participation (活动参与率) of one event, 全勤 and 上岸."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, case, distinct, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.errors import InvalidInput
from app.admin.models import CohortGroup, CohortMember, MemberTag
from app.models import GroupMembership, Member
from bots.checkin.models import CheckinEntry, EntryKind
from bots.stats.service.calendar import (
    DONE,
    LANDED_TAG,
    CampCalendar,
    day_window,
    load_calendar,
    rate,
)
from bots.xibao.models import Achievement, AchievementStatus


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
