"""The check-in scripts the scheduler fires as jobs, the member filter schedules may name,
and the variables check-ins lend every scheduled script (`app.capability`).

- Jobs: `checkin_reminder` reaches each person not checked in by their own channel with
  their own link, `leaderboard` carries the day's ranks (`bots.checkin.reminders`).
- Filter: `not_checked_in_today`.
- Context: a member's streak, points, rank, personal link and assistant; a group's
  leaderboard and the day's counts. Outside the camp's days there is no standing yet:
  streak and points are 0 and rank is the cohort's size, so a touch-plan message before
  开营 still renders.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.h5_tokens import h5_url, tokens_for
from app.capability import ContextProvider, MemberFilter, ScriptJob, Wanted
from app.channels.routing import Routing
from app.models import Member
from app.settings import Settings
from bots.checkin import service, variables
from bots.checkin.reminders import (
    LEADERBOARD_SCRIPT,
    NOT_CHECKED_IN_TODAY,
    REMINDER_SCRIPT,
    not_checked_in_today,
    post_leaderboards,
    send_checkin_reminders,
)

MEMBER_NAMES = frozenset({"streak", "points", "rank", "h5_url", "assistant_name"})
GROUP_NAMES = frozenset({"leaderboard", "checkin_count", "unchecked_count", "assistant_name"})


async def remind(
    *, session: AsyncSession, cohort_id: int, now: datetime, settings: Settings
) -> int:
    report = await send_checkin_reminders(
        session=session,
        cohort_id=cohort_id,
        now=now,
        public_base_url=settings.public_base_url,
        routing=Routing.of(settings),
    )
    return len(report.mentioned) + len(report.personal)


async def leaderboard(
    *, session: AsyncSession, cohort_id: int, now: datetime, settings: Settings
) -> int:
    return await post_leaderboards(
        session=session, cohort_id=cohort_id, now=now, routing=Routing.of(settings)
    )


async def member_values(wanted: Wanted, *, settings: Settings) -> dict[str, dict[str, object]]:
    targets = [t for t in wanted.targets if t.member is not None]
    members: list[Member] = [t.member for t in targets if t.member is not None]
    if not members:
        return {}
    session, cohort, now = wanted.session, wanted.cohort, wanted.now
    today = await service.camp_day(session=session, cohort_id=cohort.id, now=now)
    ids = [m.id for m in members]
    ranks = await variables.member_ranks(session, cohort.id, ids, today.day or 0)
    tokens = await tokens_for(session=session, member_ids=ids, now=now)
    assistants = await variables.assistant_names(session, members)
    found: dict[str, dict[str, object]] = {}
    for target in targets:
        member = target.member
        assert member is not None
        points, streak, rank = ranks[member.id]
        values: dict[str, object] = {
            "streak": streak if today.day is not None else 0,
            "points": points,
            "rank": rank,
            "h5_url": h5_url(settings.public_base_url, tokens[member.id]),
            "assistant_name": assistants.get(
                member.staff_userid or "", variables.FALLBACK_ASSISTANT
            ),
        }
        found[target.label] = {k: v for k, v in values.items() if k in wanted.names}
    return found


async def group_values(wanted: Wanted, *, settings: Settings) -> dict[str, dict[str, object]]:
    targets = [t for t in wanted.targets if t.group is not None]
    if not targets:
        return {}
    session, cohort, now = wanted.session, wanted.cohort, wanted.now
    values: dict[str, object] = {
        "leaderboard": (),
        "checkin_count": 0,
        "unchecked_count": 0,
    }
    if wanted.names & {"leaderboard", "checkin_count", "unchecked_count"}:
        day = await variables.group_context(session=session, cohort=cohort, now=now)
        if day is not None:
            values.update({k: day[k] for k in ("leaderboard", "checkin_count", "unchecked_count")})
    owners = await variables.staff_names(
        session, [t.group.owner_userid for t in targets if t.group]
    )
    found: dict[str, dict[str, object]] = {}
    for target in targets:
        assert target.group is not None
        owner = owners.get(target.group.owner_userid or "", variables.FALLBACK_ASSISTANT)
        own = values | {"assistant_name": owner}
        found[target.label] = {k: v for k, v in own.items() if k in wanted.names}
    return found


SCRIPT_JOBS = (ScriptJob(REMINDER_SCRIPT, remind), ScriptJob(LEADERBOARD_SCRIPT, leaderboard))
MEMBER_FILTERS = (MemberFilter(NOT_CHECKED_IN_TODAY, not_checked_in_today),)
CONTEXT_PROVIDERS = (
    ContextProvider("checkin.members", MEMBER_NAMES, member_values),
    ContextProvider("checkin.groups", GROUP_NAMES, group_values),
)
