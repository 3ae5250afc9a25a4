"""What a staff member may see in the sidebar: the customer groups they own or assist, and
the students who follow them. Anything else is 403.

One place decides it (`visible_groups`, `visible_students`), so the operator-linked
accounts of the console (an operator sees the cohorts they run) can be added here.
"""

from __future__ import annotations

from sqlalchemy import Select, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.errors import NotFound
from app.models import Group, GroupChannel, Member


class Hidden(Exception):
    """Not this staff member's group or student (403, saying no more)."""


def visible_groups(userid: str) -> Select[Group]:
    """The customer groups `userid` owns or assists."""
    return select(Group).where(
        Group.channel == GroupChannel.CUSTOMER,
        or_(Group.owner_userid == userid, Group.assistant_userid == userid),
    )


def visible_students(userid: str) -> Select[Member]:
    """The external students who follow `userid`."""
    return select(Member).where(Member.external_userid.is_not(None), Member.staff_userid == userid)


async def group_for(session: AsyncSession, userid: str, chat_id: str) -> Group:
    group = await session.scalar(select(Group).where(Group.chat_id == chat_id))
    if group is None:
        raise NotFound("CampBot 还没有登记这个群：请运营在后台添加（群 ID 见下）。")
    if await session.scalar(visible_groups(userid).where(Group.id == group.id)) is None:
        raise Hidden
    return group


async def student_for(session: AsyncSession, userid: str, external_userid: str) -> Member:
    member = await session.scalar(select(Member).where(Member.external_userid == external_userid))
    if member is None:
        raise NotFound("CampBot 还不认识这位学员。")
    if await session.scalar(visible_students(userid).where(Member.id == member.id)) is None:
        raise Hidden
    return member


async def can_see_chat(session: AsyncSession, userid: str, chat: str, kind: str) -> bool:
    """May `userid` act on a 群SOP item of this chat?"""
    try:
        if kind == "single":
            await student_for(session, userid, chat)
        else:
            await group_for(session, userid, chat)
    except (Hidden, NotFound):
        return False
    return True
