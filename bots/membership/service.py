"""Membership: who follows which staff member, and who sits in which group.

Service functions take keyword arguments, flush but never commit: the caller
(the dispatcher's event transaction) owns the unit of work. Writes are upserts
so a re-run of the same event (the sweeper after a crash) changes nothing.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import cast

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.sql.expression import Executable

from app.db import UTCDateTime, dialect_insert
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


@functools.cache
def _follow_statement(dialect: str) -> Executable:
    """The upsert behind `record_follow`: Core (the ORM's bulk path costs as much again as
    the statement) and built once per backend (building it costs more than running it).
    Empty staff or channel values arrive as NULL and keep what was known."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    members = cast(Table, Member.__table__)
    statement = insert(members).values(
        external_userid=bindparam("p_external_userid"),
        status=MemberStatus.ACTIVE,
        staff_userid=bindparam("p_staff_userid"),
        channel_state=bindparam("p_channel_state"),
        created_at=bindparam("p_now", type_=UTCDateTime),
        updated_at=bindparam("p_now", type_=UTCDateTime),
    )
    excluded = statement.excluded
    return statement.on_conflict_do_update(
        index_elements=["external_userid"],
        set_={
            "status": MemberStatus.ACTIVE,
            "staff_userid": func.coalesce(excluded.staff_userid, members.c.staff_userid),
            "channel_state": func.coalesce(excluded.channel_state, members.c.channel_state),
            "updated_at": excluded.updated_at,
        },
    ).returning(members.c.id)


async def record_follow(
    *,
    session: AsyncSession,
    external_userid: str,
    staff_userid: str,
    channel_state: str,
    now: datetime,
) -> int:
    """A student added a staff member: active again, with the channel they came through.

    One upsert (the busiest handler of a launch evening); an empty staff or channel keeps
    what was known. Returns the member's id. A `Member` this session already loaded is
    not refreshed: load it after this call to see the new values.
    """
    params = {
        "p_external_userid": external_userid,
        "p_staff_userid": staff_userid or None,
        "p_channel_state": channel_state or None,
        "p_now": now,
    }
    statement = _follow_statement(session.get_bind().dialect.name)
    member_id: int = (await session.execute(statement, params)).scalar_one()
    return member_id


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


async def reconcile_members(
    *,
    session: AsyncSession,
    group: Group,
    present: Mapping[str, int | None],
    version: str,
    read_version: str | None,
    now: datetime,
) -> None:
    """Make the group's current members exactly `present` (WeCom's list from groupchat/get:
    member key → join scene). The group counts as synced at `version` only if no event
    moved its version since `read_version` was read (else the next sync runs again)."""
    current = set(
        (
            await session.execute(
                select(GroupMembership.member_key).where(
                    GroupMembership.group_id == group.id, GroupMembership.left_at.is_(None)
                )
            )
        ).scalars()
    )
    for key, scene in present.items():
        if key not in current:
            await record_joins(
                session=session, group=group, member_keys=[key], join_scene=scene, now=now
            )
    gone = current - set(present)
    await record_leaves(session=session, group=group, member_keys=gone, quit_scene=None, now=now)
    if group.member_version == read_version:
        group.member_version = version or group.member_version
        group.needs_sync = False
    group.updated_at = now
