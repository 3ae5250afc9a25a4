"""What a staff member may see in the sidebar: the customer groups they own or assist, the
students who follow them, and — when their WeCom userid is linked to a console account —
what that account runs: an operator's or admin's every cohort, an assistant's own cohorts
(`console_account_cohorts`). Anything else is 403.

One place decides it (`visible_groups`, `visible_students`), as SQL, so a card's check is
one query whatever grants it.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Select, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.errors import NotFound
from app.admin.models import CohortGroup, CohortMember
from app.console.models import AccountCohort, ConsoleAccount, Role
from app.models import Group, GroupChannel, Member


class Hidden(Exception):
    """Not this staff member's group or student (403, saying no more)."""


def _linked(userid: str) -> ColumnElement[bool]:
    return (ConsoleAccount.wecom_userid == userid) & ConsoleAccount.disabled_at.is_(None)


def _runs_every_cohort(userid: str) -> ColumnElement[bool]:
    """The userid is an enabled operator's or admin's console account."""
    return exists().where(_linked(userid), ConsoleAccount.role.in_((Role.OPERATOR, Role.ADMIN)))


def _assisted_cohorts(userid: str) -> Select[int]:
    """The cohorts of the enabled assistant account linked to `userid`."""
    return (
        select(AccountCohort.cohort_id)
        .join(ConsoleAccount, ConsoleAccount.id == AccountCohort.account_id)
        .where(_linked(userid), ConsoleAccount.role == Role.ASSISTANT)
    )


def visible_groups(userid: str) -> Select[Group]:
    """The customer groups `userid` owns, assists, or runs through a linked console account."""
    in_cohorts = select(CohortGroup.group_id).where(
        CohortGroup.cohort_id.in_(_assisted_cohorts(userid))
    )
    return select(Group).where(
        Group.channel == GroupChannel.CUSTOMER,
        or_(
            Group.owner_userid == userid,
            Group.assistant_userid == userid,
            Group.id.in_(in_cohorts),
            _runs_every_cohort(userid),
        ),
    )


def visible_students(userid: str) -> Select[Member]:
    """The external students who follow `userid`, or are in cohorts a linked console account
    runs."""
    in_cohorts = select(CohortMember.member_id).where(
        CohortMember.cohort_id.in_(_assisted_cohorts(userid))
    )
    return select(Member).where(
        Member.external_userid.is_not(None),
        or_(Member.staff_userid == userid, Member.id.in_(in_cohorts), _runs_every_cohort(userid)),
    )


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
