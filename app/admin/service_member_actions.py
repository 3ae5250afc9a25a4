"""Actions on one member beyond its fields: tags, and revoking the personal H5 link."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin import h5_tokens
from app.admin.common import Actor, get_or_404
from app.admin.models import MemberTag
from app.admin.service_members import WHAT, MemberView, audit_shape, record_change, view_of
from app.models import Member


async def change_tags(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    member_id: int,
    add: Iterable[str],
    remove: Iterable[str],
) -> MemberView:
    """Add then remove tags (a tag in both ends up removed); unknown removals are ignored."""
    member = await get_or_404(Member, member_id, session=session, what=WHAT, lock=True)
    current = await view_of(member, session=session, now=now)
    for tag in sorted(set(add) - set(current.tags)):
        session.add(MemberTag(member_id=member_id, tag=tag, created_at=now))
    await session.flush()
    dropped = set(remove)
    if dropped:
        await session.execute(
            delete(MemberTag).where(MemberTag.member_id == member_id, MemberTag.tag.in_(dropped))
        )
    view = await view_of(member, session=session, now=now)
    if list(view.tags) != list(current.tags):
        await record_change(
            session=session,
            actor=actor,
            now=now,
            member_id=member_id,
            action="tags",
            before=audit_shape(current),
            after=audit_shape(view),
        )
    return view


async def revoke_link(
    *, session: AsyncSession, actor: Actor, now: datetime, member_id: int
) -> MemberView:
    """Kill the member's current H5 link; the answer carries the new one."""
    member = await get_or_404(Member, member_id, session=session, what=WHAT, lock=True)
    old = await h5_tokens.versions(session=session, member_ids=[member_id])
    version = await h5_tokens.revoke(session=session, member_id=member_id, now=now)
    await record_change(
        session=session,
        actor=actor,
        now=now,
        member_id=member_id,
        action="revoke_link",
        before={"h5_token_version": old[member_id]},
        after={"h5_token_version": version},
    )
    return await view_of(member, session=session, now=now)
