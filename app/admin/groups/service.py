"""Groups: rows of the platform `groups` table, their channel, and the cohort they serve.

A group must be reachable by its channel (ARCHITECTURE §2): `app.channels.reach.reach_group`
is the one judge of that, so what it refuses here is exactly what the sender would refuse.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.audit import AuditTrail
from app.admin.cohorts.service import require_cohort
from app.admin.common import Actor, Page, flush_or_conflict, get_or_404, snapshot
from app.admin.errors import Conflict, InvalidInput, NotFound
from app.admin.models import CohortGroup
from app.channels.reach import reach_group
from app.models import Group, GroupChannel, GroupMembership, GroupStatus
from app.wecom.errors import UndeliverableError

AUDIT = AuditTrail("groups")
WHAT = "群"
EDITABLE = frozenset(
    {
        "cohort_id",
        "name",
        "channel",
        "robot_key",
        "chat_id",
        "owner_userid",
        "assistant_userid",
        "status",
    }
)


@dataclass(frozen=True, slots=True)
class GroupView:
    group: Group
    cohort_id: int | None
    member_count: int  # members in the group now (left_at unset)


def _check_reachable(group: Group) -> None:
    try:
        reach_group(group)
    except UndeliverableError as exc:
        if group.channel == GroupChannel.ROBOT:
            field = "robot_key"
        elif not group.chat_id:
            field = "chat_id"
        else:
            field = "owner_userid"
        raise InvalidInput(field, exc.message) from exc


async def _check_unique(*, session: AsyncSession, group: Group) -> None:
    with session.no_autoflush:  # the edited row must not be written before it is checked
        await _check_unique_now(session=session, group=group)


async def _check_unique_now(*, session: AsyncSession, group: Group) -> None:
    if group.chat_id:
        other = await session.scalar(
            select(Group.id).where(Group.chat_id == group.chat_id, Group.id != group.id)
        )
        if other is not None:
            raise Conflict(_chat_taken(group.chat_id, other))
    if group.robot_key:
        # One webhook key posts into one group; two rows with it would send everything twice.
        other = await session.scalar(
            select(Group.id).where(Group.robot_key == group.robot_key, Group.id != group.id)
        )
        if other is not None:
            raise Conflict(f"机器人 key 已被群 {other} 使用；一个机器人只属于一个群。")


def _chat_taken(chat_id: str, other: int | None = None) -> str:
    if other is None:
        return f"群 ID（chat_id）「{chat_id}」已登记。"
    return f"群 ID（chat_id）「{chat_id}」已登记为群 {other}；要修改它请用 PATCH /groups/{other}。"


async def _link(
    *, session: AsyncSession, group_id: int, cohort_id: int | None, now: datetime
) -> None:
    link = await session.get(CohortGroup, group_id)
    if cohort_id is None:
        if link is not None:
            await session.delete(link)
    elif link is None:
        session.add(CohortGroup(group_id=group_id, cohort_id=cohort_id, linked_at=now))
    elif link.cohort_id != cohort_id:
        link.cohort_id, link.linked_at = cohort_id, now
    await session.flush()


def _audit_shape(view: GroupView) -> dict[str, object]:
    return {**snapshot(view.group), "cohort_id": view.cohort_id}


def _listing() -> Select[Group, int]:
    return select(Group, CohortGroup.cohort_id).outerjoin(
        CohortGroup, CohortGroup.group_id == Group.id
    )


async def _member_counts(*, session: AsyncSession, group_ids: Sequence[int]) -> dict[int, int]:
    if not group_ids:
        return {}
    rows = await session.execute(
        select(GroupMembership.group_id, func.count())
        .where(GroupMembership.group_id.in_(group_ids), GroupMembership.left_at.is_(None))
        .group_by(GroupMembership.group_id)
    )
    return {group_id: int(count) for group_id, count in rows}


async def get_group(*, session: AsyncSession, group_id: int) -> GroupView:
    row = (await session.execute(_listing().where(Group.id == group_id))).first()
    if row is None:
        raise NotFound(f"{WHAT} {group_id} 不存在。")
    group, cohort_id = row
    counts = await _member_counts(session=session, group_ids=[group.id])
    return GroupView(group, cohort_id, counts.get(group.id, 0))


async def list_groups(
    *,
    session: AsyncSession,
    cohort_id: int | None,
    channel: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> Page[GroupView]:
    statement = _listing().order_by(Group.id)
    if cohort_id is not None:
        statement = statement.where(CohortGroup.cohort_id == cohort_id)
    if channel is not None:
        statement = statement.where(Group.channel == channel)
    if status is not None:
        statement = statement.where(Group.status == status)
    total = await session.scalar(
        select(func.count()).select_from(statement.order_by(None).subquery())
    )
    rows = (await session.execute(statement.limit(limit).offset(offset))).all()
    counts = await _member_counts(session=session, group_ids=[g.id for g, _ in rows])
    return Page([GroupView(g, c, counts.get(g.id, 0)) for g, c in rows], int(total or 0))


async def create_group(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    cohort_id: int | None,
    name: str,
    channel: GroupChannel,
    robot_key: str | None,
    chat_id: str | None,
    owner_userid: str | None,
    assistant_userid: str | None = None,
) -> GroupView:
    if cohort_id is not None:
        await require_cohort(session=session, cohort_id=cohort_id)
    group = Group(
        name=name,
        channel=channel,
        robot_key=robot_key,
        chat_id=chat_id,
        owner_userid=owner_userid,
        assistant_userid=assistant_userid,
        status=GroupStatus.ACTIVE,
        needs_sync=False,
        created_at=now,
        updated_at=now,
    )
    _check_reachable(group)
    await _check_unique(session=session, group=group)
    session.add(group)
    await flush_or_conflict(session, _chat_taken(chat_id or ""))
    await _link(session=session, group_id=group.id, cohort_id=cohort_id, now=now)
    view = GroupView(group, cohort_id, 0)
    after = _audit_shape(view)
    await AUDIT.record("create", group.id, session=session, actor=actor, now=now, after=after)
    return view


async def update_group(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    group_id: int,
    changes: Mapping[str, Any],
) -> GroupView:
    """Apply the given fields (already validated), then check the group is still reachable."""
    unknown = set(changes) - EDITABLE
    if unknown:
        raise ValueError(f"not editable: {sorted(unknown)}")
    await get_or_404(Group, group_id, session=session, what=WHAT, lock=True)
    current = await get_group(session=session, group_id=group_id)
    before = _audit_shape(current)
    group, cohort_id = current.group, current.cohort_id
    if "cohort_id" in changes:
        cohort_id = changes["cohort_id"]
        if cohort_id is not None:
            await require_cohort(session=session, cohort_id=cohort_id)
    for key, value in changes.items():
        if key != "cohort_id":
            setattr(group, key, value)
    _check_reachable(group)
    await _check_unique(session=session, group=group)
    view = GroupView(group, cohort_id, current.member_count)
    if _audit_shape(view) == before:
        return view
    group.updated_at = now
    await flush_or_conflict(session, _chat_taken(group.chat_id or ""))
    await _link(session=session, group_id=group.id, cohort_id=cohort_id, now=now)
    after = _audit_shape(view)
    await AUDIT.record(
        "update", group.id, session=session, actor=actor, now=now, before=before, after=after
    )
    return view


async def delete_group(
    *, session: AsyncSession, actor: Actor, now: datetime, group_id: int
) -> None:
    """Delete the row; its memberships and cohort link go with it (ON DELETE CASCADE)."""
    await get_or_404(Group, group_id, session=session, what=WHAT, lock=True)
    before = _audit_shape(await get_group(session=session, group_id=group_id))
    try:
        await session.execute(delete(Group).where(Group.id == group_id))
    except IntegrityError as exc:
        raise Conflict(f"群 {group_id} 仍被其他数据引用，不能删除。") from exc
    session.expunge_all()  # the ORM copies of the deleted rows are stale now
    await AUDIT.record("delete", group_id, session=session, actor=actor, now=now, before=before)
