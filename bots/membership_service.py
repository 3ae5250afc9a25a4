"""Membership: who follows which staff member, and who sits in which group.

Service functions take keyword arguments, flush but never commit: the caller
(the dispatcher's event transaction) owns the unit of work. Writes are upserts
so a re-run of the same event (the sweeper after a crash) changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.models import (
    Group,
    GroupChannel,
    GroupMembership,
    GroupStatus,
    Member,
    MemberStatus,
)


async def ensure_external_member(
    *, session: AsyncSession, external_userid: str, now: datetime
) -> Member:
    """The member row for an external contact, created if new (race-safe)."""
    insert = dialect_insert(session)
    await session.execute(
        insert(Member)
        .values(
            external_userid=external_userid,
            status=MemberStatus.ACTIVE,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["external_userid"])
    )
    return (
        await session.execute(select(Member).where(Member.external_userid == external_userid))
    ).scalar_one()


async def record_follow(
    *,
    session: AsyncSession,
    external_userid: str,
    staff_userid: str,
    channel_state: str,
    now: datetime,
) -> Member:
    """A student added a staff member: active again, with the channel they came through."""
    member = await ensure_external_member(
        session=session, external_userid=external_userid, now=now
    )
    member.status = MemberStatus.ACTIVE
    member.staff_userid = staff_userid or member.staff_userid
    member.channel_state = channel_state or member.channel_state
    member.updated_at = now
    await session.flush()
    return member


async def record_unfollow(
    *, session: AsyncSession, external_userid: str, status: MemberStatus, now: datetime
) -> Member:
    """The contact ended: `lost` (student deleted staff) or `removed` (staff deleted student)."""
    member = await ensure_external_member(
        session=session, external_userid=external_userid, now=now
    )
    member.status = status
    member.updated_at = now
    await session.flush()
    return member


async def ensure_customer_group(*, session: AsyncSession, chat_id: str, now: datetime) -> Group:
    insert = dialect_insert(session)
    await session.execute(
        insert(Group)
        .values(
            chat_id=chat_id,
            channel=GroupChannel.CUSTOMER,
            status=GroupStatus.ACTIVE,
            needs_sync=False,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["chat_id"])
    )
    return (await session.execute(select(Group).where(Group.chat_id == chat_id))).scalar_one()


def apply_member_version(group: Group, *, last: str, current: str, now: datetime) -> None:
    """Track WeCom's member-list version; a gap means a callback was lost."""
    if last and group.member_version and last != group.member_version:
        group.needs_sync = True
    if current:
        group.member_version = current
    group.updated_at = now


async def _member_ids(session: AsyncSession, keys: Iterable[str]) -> dict[str, int]:
    keys = list(keys)
    rows = await session.execute(
        select(Member.id, Member.external_userid, Member.userid).where(
            or_(Member.external_userid.in_(keys), Member.userid.in_(keys))
        )
    )
    found: dict[str, int] = {}
    for member_id, external_userid, userid in rows:
        for key in (external_userid, userid):
            if key:
                found[key] = member_id
    return found


async def record_joins(
    *,
    session: AsyncSession,
    group: Group,
    member_keys: Iterable[str],
    join_scene: int | None,
    now: datetime,
) -> None:
    keys = list(dict.fromkeys(member_keys))
    if not keys:
        return
    ids = await _member_ids(session, keys)
    insert = dialect_insert(session)
    for key in keys:
        statement = insert(GroupMembership).values(
            group_id=group.id,
            member_key=key,
            member_id=ids.get(key),
            join_scene=join_scene,
            joined_at=now,
            left_at=None,
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["group_id", "member_key"],
                set_={
                    "left_at": None,
                    "quit_scene": None,
                    "join_scene": join_scene,
                    "joined_at": now,
                    "member_id": ids.get(key),
                },
            )
        )


async def record_leaves(
    *,
    session: AsyncSession,
    group: Group,
    member_keys: Iterable[str],
    quit_scene: int | None,
    now: datetime,
) -> None:
    keys = list(dict.fromkeys(member_keys))
    if keys:
        await session.execute(
            update(GroupMembership)
            .where(
                GroupMembership.group_id == group.id,
                GroupMembership.member_key.in_(keys),
                GroupMembership.left_at.is_(None),
            )
            .values(left_at=now, quit_scene=quit_scene)
        )


async def dismiss_group(*, session: AsyncSession, group: Group, now: datetime) -> None:
    group.status = GroupStatus.DISMISSED
    group.updated_at = now
    await session.execute(
        update(GroupMembership)
        .where(GroupMembership.group_id == group.id, GroupMembership.left_at.is_(None))
        .values(left_at=now)
    )
