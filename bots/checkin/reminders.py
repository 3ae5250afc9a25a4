"""Check-in reminders and the daily leaderboard: who has not checked in today, and telling
them through the channel that really reaches them (ARCHITECTURE §2).

- `not_checked_in_today` is a schedules member filter (contributed by the capability,
  `bots.checkin.jobs`: schedules never import bots): active members of the cohort with
  no check-in entry — on time, 补卡 or 请假 — for the cohort's current camp day (its
  CheckinRule's day boundary, 04:00 by default, in its time zone). One correlated NOT
  EXISTS on the (cohort, day, kind) index, so it resolves in one query however many
  members the cohort has. Outside the camp (before day 0, after the last day) nobody is
  "not checked in": there is nothing to remind of.
- `send_checkin_reminders`: internal members (a WeCom userid) who are in one of the
  cohort's robot groups are @-mentioned there, one message per group naming only those not
  checked in (`checkin_reminder_group`); other internal members get the personal
  `checkin_reminder` with their own link as an app message. External students are reached
  through their staff member without one task per student (`app.channels.routing`): the
  cohort's `checkin_reminder_mass` — the same text for everyone, their links being in the
  welcome and on their page — becomes **one** 群发 per staff member and evening, naming
  every student of theirs not checked in who has 群发 quota left; the others (and everyone,
  when the library has no such script) get the personal reminder as a 群SOP item in their
  1:1 chat, which the staff member sends from the chat toolbar.
- `post_daily_leaderboards`: the cohort's top 10 to each of its groups, once per group and
  day (`leaderboard:{group_id}:{date}`), rendered from the `leaderboard` script.

Every message goes through the outbox under a key naming the member or group and the camp
day's date, so running a reminder twice the same evening sends nothing twice.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Select, false, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import outbox
from app.admin.models import Cohort, CohortGroup, CohortMember
from app.channels.messages import OutMessage
from app.channels.reach import (
    Channel,
    Destination,
    enqueue_message,
    message_payload,
    reach_group,
    reach_member,
)
from app.channels.routing import (
    DEFAULT_ROUTING,
    Routing,
    StudentPush,
    is_personal,
    route_group,
    route_students,
)
from app.clock import Clock
from app.models import Group, GroupChannel, GroupMembership, GroupStatus, Member, MemberStatus
from app.wecom.errors import UndeliverableError
from bots.checkin import service
from bots.checkin.variables import base_context, checked_in, group_context, member_contexts
from scripts_library.errors import ScriptNotFoundError
from scripts_library.models import Script
from scripts_library.render import render, variables_used
from scripts_library.service import get_script
from scripts_library.variables import RenderContext

NOT_CHECKED_IN_TODAY = "not_checked_in_today"
REMINDER_SCRIPT = "checkin_reminder"
MASS_REMINDER_SCRIPT = "checkin_reminder_mass"
GROUP_REMINDER_SCRIPT = "checkin_reminder_group"
LEADERBOARD_SCRIPT = "leaderboard"


async def not_checked_in_today(
    session: AsyncSession, query: Select[Member], cohort_id: int, now: datetime
) -> Select[Member]:
    today = await service.camp_day(session=session, cohort_id=cohort_id, now=now)
    if today.day is None:
        return query.where(false())
    return query.where(~checked_in(cohort_id, today.day))


def cohort_members(cohort_id: int) -> Select[Member]:
    """The cohort's active members (what schedules' `members` targets start from)."""
    return (
        select(Member)
        .join(CohortMember, CohortMember.member_id == Member.id)
        .where(CohortMember.cohort_id == cohort_id, Member.status == MemberStatus.ACTIVE)
        .order_by(Member.id)
    )


# --------------------------------------------------------------------------- reminders


@dataclass(slots=True)
class ReminderReport:
    """What a reminder run enqueued (new rows only) and whom it could not reach."""

    mentioned: dict[int, list[str]] = field(default_factory=dict)  # group id -> userids
    personal: dict[int, Channel] = field(default_factory=dict)  # member id -> channel
    unreachable: list[int] = field(default_factory=list)  # member ids without a channel


async def _robot_groups(
    session: AsyncSession, cohort_id: int, members: Sequence[Member]
) -> dict[Group, list[Member]]:
    """The cohort's robot groups each internal member is currently in (from the synced
    group memberships), in group order."""
    internal = {m.id: m for m in members if m.userid}
    if not internal:
        return {}
    rows = await session.execute(
        select(Group, GroupMembership.member_id)
        .join(CohortGroup, CohortGroup.group_id == Group.id)
        .join(GroupMembership, GroupMembership.group_id == Group.id)
        .where(
            CohortGroup.cohort_id == cohort_id,
            Group.channel == GroupChannel.ROBOT,
            Group.status == GroupStatus.ACTIVE,
            Group.robot_key.is_not(None),
            GroupMembership.left_at.is_(None),
            GroupMembership.member_id.in_(list(internal)),
        )
        .order_by(Group.id, GroupMembership.member_id)
    )
    groups: dict[Group, list[Member]] = defaultdict(list)
    for group, member_id in rows.all():
        if member_id is not None:  # filtered by the query; the column is nullable
            groups[group].append(internal[member_id])
    return groups


def reminder_key(member_id: int, day: str) -> str:
    return f"checkin_reminder:{member_id}:{day}"


def group_reminder_key(group_id: int, day: str) -> str:
    return f"checkin_reminder:group:{group_id}:{day}"


async def send_checkin_reminders(
    *,
    session: AsyncSession,
    cohort_id: int,
    now: datetime,
    public_base_url: str,
    routing: Routing = DEFAULT_ROUTING,
) -> ReminderReport:
    """Remind the cohort's members not checked in today (see the module docstring); flushes,
    never commits. Raises ScriptNotFoundError when a reminder script is missing."""
    report = ReminderReport()
    today = await service.camp_day(session=session, cohort_id=cohort_id, now=now)
    cohort = await session.get(Cohort, cohort_id)
    if today.date is None or cohort is None:
        return report
    date = today.date.isoformat()
    query = await not_checked_in_today(session, cohort_members(cohort_id), cohort_id, now)
    members = list((await session.execute(query)).scalars())
    groups = await _robot_groups(session, cohort_id, members)
    if groups:
        script = await get_script(session=session, key=GROUP_REMINDER_SCRIPT)
        for group, in_group in groups.items():
            userids = [str(m.userid) for m in in_group]
            context = RenderContext(
                **base_context(cohort, today),  # type: ignore[arg-type]
                group_name=group.name or "",
                unchecked_count=len(userids),
            )
            text = render(script, context)
            message = OutMessage(text.msgtype, content=text.content, mentions=tuple(userids))
            if await enqueue_message(
                session=session,
                key=group_reminder_key(group.id, date),
                destination=reach_group(group),
                message=message,
                now=now,
            ):
                report.mentioned[group.id] = userids
    mentioned = {m.id for in_group in groups.values() for m in in_group}
    personal = [m for m in members if m.id not in mentioned]
    if personal:
        await _remind_personally(
            session,
            cohort,
            personal,
            now=now,
            date=date,
            base_url=public_base_url,
            report=report,
            routing=routing,
        )
    return report


async def _remind_personally(
    session: AsyncSession,
    cohort: Cohort,
    members: Sequence[Member],
    *,
    now: datetime,
    date: str,
    base_url: str,
    report: ReminderReport,
    routing: Routing,
) -> None:
    routes: dict[int, Destination] = {}
    for member in members:
        try:
            routes[member.id] = reach_member(member)
        except UndeliverableError:
            report.unreachable.append(member.id)
    if not routes:
        return
    script = await get_script(session=session, key=REMINDER_SCRIPT)
    reachable = [m for m in members if m.id in routes]
    contexts = await member_contexts(
        session=session, cohort=cohort, members=reachable, now=now, public_base_url=base_url
    )
    students = [m for m in reachable if routes[m.id].channel == Channel.CUSTOMER_SINGLE]
    for member in (m for m in reachable if m not in students):
        if await enqueue_message(
            session=session,
            key=reminder_key(member.id, date),
            destination=routes[member.id],
            message=render(script, contexts[member.id]),
            now=now,
            title=script.title,
        ):
            report.personal[member.id] = routes[member.id].channel
    if students:
        await _remind_students(
            session,
            students,
            script,
            contexts,
            now=now,
            date=date,
            report=report,
            routing=routing,
            tz=cohort.timezone,
        )


async def _mass_script(session: AsyncSession, personal: Script) -> Script:
    """The same-for-everyone reminder, else the personal one (then: 1:1 群SOP items)."""
    try:
        return await get_script(session=session, key=MASS_REMINDER_SCRIPT)
    except ScriptNotFoundError:
        return personal


async def _remind_students(
    session: AsyncSession,
    students: Sequence[Member],
    personal: Script,
    contexts: dict[int, RenderContext],
    *,
    now: datetime,
    date: str,
    report: ReminderReport,
    routing: Routing,
    tz: str,
) -> None:
    """External students: one merged 群发 per staff member, 1:1 群SOP items for the rest;
    `tz`: the cohort's clock, for their quota windows."""
    script = await _mass_script(session, personal)
    pushes = [StudentPush(m, render(script, contexts[m.id])) for m in students]
    by_external = {str(m.external_userid): m for m in students}
    routed = await route_students(
        session=session,
        pushes=pushes,
        delivery=script.group_delivery,
        personal=is_personal(variables_used(script)),
        routing=routing,
        key_of=lambda label: reminder_route_key(label, date),
        now=now,
        tz=tz,
    )
    for route in routed:
        if route.destination.channel == Channel.STAFF:
            member = by_external[route.destination.target]
            # The personal one, 1:1 (already rendered when no same-for-everyone one exists).
            message = (
                route.message if script is personal else render(personal, contexts[member.id])
            )
            key, whom = reminder_key(member.id, date), [member]
        else:
            message, key = route.message, reminder_route_key(route.label, date)
            whom = [by_external[e] for e in route.recipients]
        payload = message_payload(route.destination, message, title=personal.title)
        payload.update(route.payload_extra())
        created = await outbox.enqueue(
            session=session,
            key=key,
            channel=route.destination.channel,
            target=route.destination.target,
            payload=payload,
            now=now,
        )
        for member in whom if created else ():
            report.personal[member.id] = Channel(route.destination.channel)


def reminder_route_key(label: str, day: str) -> str:
    """A merged reminder's key: one per staff member, text and evening."""
    return f"checkin_reminder:{label}:{day}"


# --------------------------------------------------------------------------- leaderboard


def leaderboard_key(group_id: int, day: str) -> str:
    return f"leaderboard:{group_id}:{day}"


async def post_leaderboards(
    *, session: AsyncSession, cohort_id: int, now: datetime, routing: Routing = DEFAULT_ROUTING
) -> int:
    """Enqueue today's leaderboard to each reachable active group of the cohort; how many
    rows were new (0 outside the camp, or when already posted today). Flushes, never commits."""
    cohort = await session.get(Cohort, cohort_id)
    if cohort is None:
        return 0
    variables = await group_context(session=session, cohort=cohort, now=now)
    today = await service.camp_day(session=session, cohort_id=cohort_id, now=now)
    if variables is None or today.date is None:
        return 0
    script = await get_script(session=session, key=LEADERBOARD_SCRIPT)
    groups = await session.execute(
        select(Group)
        .join(CohortGroup, CohortGroup.group_id == Group.id)
        .where(CohortGroup.cohort_id == cohort_id, Group.status == GroupStatus.ACTIVE)
        .order_by(Group.id)
    )
    posted = 0
    for group in groups.scalars():
        try:
            route = reach_group(group)
        except UndeliverableError:
            continue  # a group without its channel details: the calendar shows it
        context = RenderContext(**variables, group_name=group.name or "")  # type: ignore[arg-type]
        key = leaderboard_key(group.id, today.date.isoformat())
        route = await route_group(
            session=session,
            group=group,
            destination=route,
            delivery=script.group_delivery,
            routing=routing,
            key=key,
            now=now,
            tz=cohort.timezone,
        )
        posted += (
            await enqueue_message(
                session=session,
                key=key,
                destination=route,
                message=render(script, context),
                now=now,
                title=script.title,
            )
            is not None
        )
    return posted


async def post_daily_leaderboards(
    *, sessions: async_sessionmaker[AsyncSession], clock: Clock, cohort_id: int
) -> int:
    """`post_leaderboards` in its own transaction (for a job: the scheduler's daily tick)."""
    async with sessions.begin() as session:
        return await post_leaderboards(session=session, cohort_id=cohort_id, now=clock.now())
