"""Per group and per assistant: their students on the latest observed day and overall."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import CTE, ColumnElement, and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import CohortGroup
from app.models import Group, GroupMembership
from bots.stats.service.calendar import (
    CampCalendar,
    Entries,
    count_if,
    day_roster,
    enrolled_members,
    rate,
    with_entries,
)


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


def _slice_columns(e: Entries, day: ColumnElement[Any], latest: int) -> list[Any]:
    today = day == latest
    return [
        count_if(today),
        count_if(and_(today, e.checked())),
        func.count(),
        count_if(e.checked()),
        count_if(e.submitted()),
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
        roster = day_roster(days, enrolled_members(cohort_id))
        e = with_entries(roster, cohort_id)
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
    roster = day_roster(days, enrolled_members(calendar.cohort.id))
    e = with_entries(roster, calendar.cohort.id)
    query = (
        select(roster.c.staff_userid, *_slice_columns(e, roster.c.day, calendar.latest_day))
        .select_from(e.source)
        .group_by(roster.c.staff_userid)
    )
    slices = [_slice(row[0], row[1:]) for row in await session.execute(query)]
    return sorted(slices, key=lambda s: s.key)
