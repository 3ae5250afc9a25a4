"""What scheduled scripts may say about check-ins (`schedules.context`): a member's streak,
points, rank, personal link and assistant; a group's leaderboard and the day's counts.

Outside the camp's days there is no standing yet: streak and points are 0 and rank is
the cohort's size, so a touch-plan message before 开营 still renders.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.h5_tokens import h5_url, tokens_for
from app.models import Member
from bots.checkin import reminders, service
from schedules.context import Wanted, context_provider

MEMBER_NAMES = frozenset({"streak", "points", "rank", "h5_url", "assistant_name"})
GROUP_NAMES = frozenset({"leaderboard", "checkin_count", "unchecked_count", "assistant_name"})


def install_context(*, public_base_url: str) -> None:
    @context_provider("checkin.members", MEMBER_NAMES)
    async def members(wanted: Wanted) -> dict[str, dict[str, object]]:
        return await _member_values(wanted, public_base_url)

    @context_provider("checkin.groups", GROUP_NAMES)
    async def groups(wanted: Wanted) -> dict[str, dict[str, object]]:
        return await _group_values(wanted)


async def _member_values(wanted: Wanted, public_base_url: str) -> dict[str, dict[str, object]]:
    targets = [t for t in wanted.targets if t.member is not None]
    members: list[Member] = [t.member for t in targets if t.member is not None]
    if not members:
        return {}
    session, cohort, now = wanted.session, wanted.cohort, wanted.now
    today = await service.camp_day(session=session, cohort_id=cohort.id, now=now)
    ids = [m.id for m in members]
    ranks = await reminders.member_ranks(session, cohort.id, ids, today.day or 0)
    tokens = await tokens_for(session=session, member_ids=ids, now=now)
    assistants = await reminders.assistant_names(session, members)
    found: dict[str, dict[str, object]] = {}
    for target in targets:
        member = target.member
        assert member is not None
        points, streak, rank = ranks[member.id]
        values: dict[str, object] = {
            "streak": streak if today.day is not None else 0,
            "points": points,
            "rank": rank,
            "h5_url": h5_url(public_base_url, tokens[member.id]),
            "assistant_name": assistants.get(
                member.staff_userid or "", reminders.FALLBACK_ASSISTANT
            ),
        }
        found[target.label] = {k: v for k, v in values.items() if k in wanted.names}
    return found


async def _group_values(wanted: Wanted) -> dict[str, dict[str, object]]:
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
        day = await reminders.group_context(session=session, cohort=cohort, now=now)
        if day is not None:
            values.update({k: day[k] for k in ("leaderboard", "checkin_count", "unchecked_count")})
    owners = await _owner_names(session, [t.group.owner_userid for t in targets if t.group])
    found: dict[str, dict[str, object]] = {}
    for target in targets:
        assert target.group is not None
        owner = owners.get(target.group.owner_userid or "", reminders.FALLBACK_ASSISTANT)
        own = values | {"assistant_name": owner}
        found[target.label] = {k: v for k, v in own.items() if k in wanted.names}
    return found


async def _owner_names(session: AsyncSession, userids: Sequence[str | None]) -> dict[str, str]:
    """Group owners' names, said as the group's assistant (a group script's `assistant_name`)."""
    wanted = {u for u in userids if u}
    if not wanted:
        return {}
    rows = await session.execute(
        select(Member.userid, Member.name).where(
            Member.userid.in_(wanted), Member.name.is_not(None)
        )
    )
    return {str(u): str(n) for u, n in rows.all()}
