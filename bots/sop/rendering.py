"""Scripts the sidebar renders: the 话术库 search in a group (found by text, rendered one at
a time when tapped — each render is bounded, never twenty in one request) and a student's
personal check-in reminder."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.errors import Conflict, NotFound
from app.models import Group
from bots.sop.cards import StudentCard, cohort_of
from bots.sop.notices import staff_names
from scripts_library.errors import RenderError, ScriptNotFoundError
from scripts_library.models import Script
from scripts_library.render import render
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


def _today(tz: str, now: datetime) -> dict[str, object]:
    local = now.astimezone(ZoneInfo(tz)).date()
    return {"date": zh_date(local), "weekday": zh_weekday(local)}


async def render_for_group(
    *, session: AsyncSession, group: Group, key: str, now: datetime
) -> dict[str, object]:
    try:
        script = await get_script(session=session, key=key)
    except ScriptNotFoundError as exc:
        raise NotFound(f"话术「{key}」不存在。") from exc
    cohort = await cohort_of(session, group)
    staff = group.assistant_userid or group.owner_userid or ""
    fields: dict[str, object] = {
        "group_name": group.name or "",
        "assistant_name": (await staff_names(session, [staff])).get(staff, "助教老师"),
    }
    if cohort is not None:
        local = now.astimezone(ZoneInfo(cohort.timezone)).date()
        fields.update(
            camp_name=cohort.camp,
            cohort_name=cohort.name,
            total_days=cohort.days,
            day=(local - cohort.start_date).days,
            **_today(cohort.timezone, now),
        )
    try:
        message = render(script, RenderContext(**fields))  # type: ignore[arg-type]
    except RenderError as exc:
        raise Conflict(f"这条话术需要学员或其他信息，不能直接发到群里：{exc}") from exc
    return {"key": script.key, "title": script.title, "message": message.to_json()}


async def personal_reminder(
    *, session: AsyncSession, card: StudentCard, now: datetime
) -> str | None:
    """The student's own check-in reminder (their name, streak, link), or None without it."""
    try:
        script = await get_script(session=session, key=REMINDER_SCRIPT)
    except ScriptNotFoundError:
        return None
    staff = card.member.staff_userid or ""
    context = RenderContext(
        student_name=card.member.name or "同学",
        streak=card.streak,
        points=card.points,
        rank=card.rank or 0,
        h5_url=card.h5_url,
        day=card.camp_day,
        assistant_name=(await staff_names(session, [staff])).get(staff, "助教老师"),
        **_today("Asia/Shanghai", now),  # type: ignore[arg-type]
    )
    try:
        return render(script, context).content
    except RenderError:
        return None
