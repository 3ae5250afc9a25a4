"""Who a firing goes to: a cohort's groups, chosen groups, filtered members, staff.

Member filters other than `all` come from the capabilities (the check-in capability's
`not_checked_in_today`), handed in by the caller (`app.capability.Extensions`): the
scheduler never imports bots.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import CohortGroup, CohortMember
from app.capability import FilterRun
from app.channels.reach import Channel, Destination, reach_group, reach_member
from app.models import Group, GroupStatus, Member, MemberStatus
from app.wecom.errors import UndeliverableError
from schedules.triggers import TriggerError

GROUP_ID_MAX = 2**31 - 1  # groups.id is a 32-bit integer column
ALL = "all"


async def _all(
    session: AsyncSession, query: Select[Member], cohort_id: int, now: datetime
) -> Select[Member]:
    return query


@dataclass(frozen=True, slots=True)
class Target:
    destination: Destination
    group: Group | None = None
    member: Member | None = None

    @property
    def label(self) -> str:
        return self.destination.label


def _all_ids(value: object) -> bool:
    return isinstance(value, list) and all(
        isinstance(i, int) and not isinstance(i, bool) and 1 <= i <= GROUP_ID_MAX for i in value
    )


def _all_userids(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(u, str) and u.strip() for u in value)


def check_target(target: dict[str, Any], *, filters: Collection[str]) -> None:
    """Refuse a target the scheduler could not resolve (Chinese, for the 422); `filters`:
    the capabilities' member filters."""
    if not isinstance(target, dict):  # a PATCH may send null
        raise TriggerError(f"目标须为 JSON 对象，收到 {target!r}")
    kind = target.get("type")
    # resolve() turns these into SQL parameters and routes: anything else fails at firing time.
    if kind == "groups" and not _all_ids(target.get("group_ids")):
        raise TriggerError("groups 目标需要 group_ids 列表（群 id，正整数）")
    known = {ALL, *filters}
    if kind == "members" and str(target.get("filter", ALL)) not in known:
        raise TriggerError(
            f"未知的成员筛选：{target.get('filter')!r}（可用：{', '.join(sorted(known))}）"
        )
    if kind == "staff" and not _all_userids(target.get("userids")):
        raise TriggerError("staff 目标需要 userids 列表（员工 userid 字符串）")
    if kind not in ("cohort_groups", "groups", "members", "staff"):
        raise TriggerError(
            f"未知的目标类型：{kind!r}（可用：cohort_groups, groups, members, staff）"
        )


async def _groups(session: AsyncSession, query: Select[Group]) -> list[Target]:
    targets = []
    for group in (
        await session.execute(query.where(Group.status == GroupStatus.ACTIVE))
    ).scalars():
        try:
            targets.append(Target(reach_group(group), group=group))
        except UndeliverableError:
            continue  # a group without its channel details: shown by the calendar as missing
    return targets


async def _members(session: AsyncSession, query: Select[Member]) -> list[Target]:
    targets = []
    for member in (await session.execute(query)).scalars():
        try:
            targets.append(Target(reach_member(member), member=member))
        except UndeliverableError:
            continue
    return targets


async def resolve(
    *,
    session: AsyncSession,
    target: dict[str, Any],
    cohort_id: int | None,
    member_id: int | None,
    now: datetime,
    filters: Mapping[str, FilterRun],
) -> list[Target]:
    """The reachable targets of a firing (member_day firings: just their member);
    `filters`: the capabilities' member filters."""
    kind = target.get("type")
    if kind == "cohort_groups":
        return await _groups(
            session,
            select(Group)
            .join(CohortGroup, CohortGroup.group_id == Group.id)
            .where(CohortGroup.cohort_id == cohort_id)
            .order_by(Group.id),
        )
    if kind == "groups":
        ids = [int(i) for i in target.get("group_ids", [])]
        return await _groups(session, select(Group).where(Group.id.in_(ids)).order_by(Group.id))
    if kind == "staff":
        return [
            Target(Destination(Channel.APP_MESSAGE, str(u))) for u in target.get("userids", [])
        ]
    query = (
        select(Member)
        .join(CohortMember, CohortMember.member_id == Member.id)
        .where(CohortMember.cohort_id == cohort_id, Member.status == MemberStatus.ACTIVE)
        .order_by(Member.id)
    )
    if member_id is not None:
        query = query.where(Member.id == member_id)
    name = str(target.get("filter", ALL))
    chosen = _all if name == ALL else filters[name]
    return await _members(session, await chosen(session, query, cohort_id or 0, now))
