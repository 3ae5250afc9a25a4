"""Scripts the sidebar renders: the 话术库 search in a group (found by text, rendered one at
a time when tapped — each render is bounded, never twenty in one request) and a student's
personal check-in reminder. Both say what the scheduled push would: the same variables,
built by the same code (`schedules.sends`, `bots.checkin.variables`), never a copy."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.errors import Conflict, NotFound
from app.admin.models import Cohort
from app.capability import BoundProvider
from app.channels.reach import Channel, Destination
from app.models import Group
from bots.checkin import service as checkin
from bots.checkin.service.reminder import FALLBACK_ASSISTANT, FALLBACK_NAME, member_contexts
from bots.sop.cards import StudentCard, cohort_of
from bots.sop.notices import staff_names
from schedules.context import provided_variables
from schedules.planner import cohort_zone
from schedules.sends import context_for, with_values
from schedules.targets import Target
from scripts_library.errors import RenderError, ScriptNotFoundError
from scripts_library.models import Script
from scripts_library.render import render, variables_used
from scripts_library.service import get_script
from scripts_library.variables import RenderContext, zh_date, zh_weekday

SEARCH_LIMIT = 20
REMINDER_SCRIPT = "checkin_reminder"


def _like(text: str) -> str:
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


async def search_scripts(*, session: AsyncSession, q: str) -> list[dict[str, str]]:
    statement = select(Script.key, Script.title, Script.category).order_by(
        Script.category, Script.id
    )
    if q.strip():
        pattern = _like(q.strip())
        statement = statement.where(
            or_(
                Script.key.ilike(pattern, escape="\\"),
                Script.title.ilike(pattern, escape="\\"),
                Script.body.ilike(pattern, escape="\\"),
            )
        )
    rows = await session.execute(statement.limit(SEARCH_LIMIT))
    return [{"key": key, "title": title, "category": category} for key, title, category in rows]


def _today(local: date) -> dict[str, object]:
    return {"date": zh_date(local), "weekday": zh_weekday(local)}


async def render_for_group(
    *,
    session: AsyncSession,
    group: Group,
    key: str,
    now: datetime,
    default_tz: str,
    providers: Iterable[BoundProvider],
) -> dict[str, object]:
    """The script as a scheduled push to this group would say it now (`schedules.sends`: the
    cohort's clock, else `default_tz`; the capabilities' variables from `providers`)."""
    try:
        script = await get_script(session=session, key=key)
    except ScriptNotFoundError as exc:
        raise NotFound(f"话术「{key}」不存在。") from exc
    cohort = await cohort_of(session, group)
    target = Target(Destination(Channel.CUSTOMER_GROUP, str(group.chat_id)), group=group)
    context = context_for(
        cohort=cohort, target=target, local_now=now.astimezone(cohort_zone(cohort, default_tz))
    )
    if cohort is None:  # no capability speaks for a group of no cohort: its staff member
        staff = group.assistant_userid or group.owner_userid or ""
        names = await staff_names(session, [staff])
        context = replace(context, assistant_name=names.get(staff, FALLBACK_ASSISTANT))
    extra = await provided_variables(
        session=session,
        cohort=cohort,
        targets=[target],
        names=variables_used(script),
        now=now,
        providers=providers,
    )
    try:
        message = render(script, with_values(context, extra.get(target.label)))
    except RenderError as exc:
        raise Conflict(f"这条话术需要学员或其他信息，不能直接发到群里：{exc}") from exc
    return {"key": script.key, "title": script.title, "message": message.to_json()}


async def personal_reminder(
    *,
    session: AsyncSession,
    card: StudentCard,
    now: datetime,
    public_base_url: str,
    default_tz: str,
) -> str | None:
    """The student's own check-in reminder, as the scheduled one would say it now
    (`bots.checkin.variables.member_contexts`: the cohort's camp day and clock); None without
    the script, or outside the camp's days (the scheduled one reminds nobody then). A student
    of no cohort: the date on `default_tz`, no standing."""
    try:
        script = await get_script(session=session, key=REMINDER_SCRIPT)
    except ScriptNotFoundError:
        return None
    member = card.member
    cohort_id = await checkin.member_cohort(session=session, member_id=member.id)
    cohort = await session.get(Cohort, cohort_id) if cohort_id is not None else None
    if cohort is not None:
        contexts = await member_contexts(
            session=session,
            cohort=cohort,
            members=[member],
            now=now,
            public_base_url=public_base_url,
        )
        context = contexts.get(member.id)
        if context is None:
            return None
    else:
        staff = member.staff_userid or ""
        assistants = await staff_names(session, [staff])
        context = RenderContext(
            student_name=member.name or FALLBACK_NAME,
            streak=card.streak,
            points=card.points,
            rank=card.rank or 0,
            h5_url=card.h5_url,
            assistant_name=assistants.get(staff, FALLBACK_ASSISTANT),
            **_today(now.astimezone(ZoneInfo(default_tz)).date()),  # type: ignore[arg-type]
        )
    try:
        return render(script, context).content
    except RenderError:
        return None
