"""The student page's work, through the check-in and Q&A services: what the page shows (the
member's check-ins and today's task, the content pack's script for the cohort's day N
rendered for them: `day{N}_todolist`, a cohort's own `day{N}_todolist.{state}` first), a
submission recorded with its images, and the FAQ search."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime

from sqlalchemy import bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.h5.uploads import CheckedImage
from app.storage import Storage
from bots.checkin import service as checkin
from bots.checkin.models import CheckinEntry, EntryKind
from bots.checkin.service import MemberPage, SubmitResult
from bots.qa import service as qa_service
from bots.qa.service import FaqEntry
from scripts_library.errors import RenderError
from scripts_library.models import MsgType, Script
from scripts_library.render import render
from scripts_library.variables import RenderContext, zh_date, zh_weekday

logger = logging.getLogger(__name__)

TASK_KEYS = ("day{n}_todolist", "day{n}_tasks")


@dataclass(frozen=True, slots=True)
class StudentPage(MemberPage):
    """Everything the personal H5 page shows, for one member, now."""

    today_task: str | None = None  # the day's task script, rendered for this member


async def member_page(
    *, session: AsyncSession, member_id: int, now: datetime, h5_url: str = ""
) -> StudentPage:
    """The page's content; `h5_url` fills the task script's `{{ h5_url }}`. CheckinError
    (from the check-in service) when the member is in no cohort."""
    checkins = await checkin.member_page(session=session, member_id=member_id, now=now)
    task = await render_today_task(session=session, page=checkins, h5_url=h5_url)
    shown = {f.name: getattr(checkins, f.name) for f in fields(checkins)}
    return StudentPage(**shown, today_task=task)


def task_keys(day: int, channel_state: str) -> list[str]:
    keys = [pattern.format(n=day) for pattern in TASK_KEYS]
    return [f"{key}.{channel_state}" for key in keys] + keys


# Built once: it runs on every page view.
_SCRIPTS = select(Script).where(Script.key.in_(bindparam("keys", expanding=True)))


async def _task_script(session: AsyncSession, day: int, channel_state: str) -> Script | None:
    """The first of `task_keys` that exists, read with one statement for all of them."""
    keys = task_keys(day, channel_state)
    found = {script.key: script for script in await session.scalars(_SCRIPTS, {"keys": keys})}
    return next((found[key] for key in keys if key in found), None)


async def render_today_task(*, session: AsyncSession, page: MemberPage, h5_url: str) -> str | None:
    """The day's task text, or None (no camp day, no script, or a script that does not
    render: the page still works; the operator sees the error in the log and in preview)."""
    day, standing = page.camp_day, page.standing
    if day.day is None or day.date is None:
        return None
    script = await _task_script(session, day.day, page.channel_state)
    if script is None or script.msgtype not in (MsgType.TEXT, MsgType.MARKDOWN):
        return None
    context = RenderContext(
        student_name=page.member_name,
        cohort_name=page.cohort_name,
        camp_name=page.camp_name,
        total_days=day.total_days,
        day=day.day,
        date=zh_date(day.date),
        weekday=zh_weekday(day.date),
        streak=standing.streak,
        points=standing.points,
        rank=standing.rank,
        h5_url=h5_url,
    )
    try:
        return render(script, context).content
    except RenderError as exc:
        logger.warning("today's task %s for cohort %s: %s", script.key, page.cohort_id, exc)
        return None


async def search_faq(
    *, session: AsyncSession, member_id: int, query: str, now: datetime
) -> list[FaqEntry]:
    """The FAQ entries for the member's cohort; a question nothing answers is counted with
    the app's unanswered questions, so operators see what students look for in vain."""
    if not query:
        return []
    cohort_id = await checkin.member_cohort(session=session, member_id=member_id)
    entries = await qa_service.search_faq(session=session, cohort_id=cohort_id, query=query)
    if not entries:
        await qa_service.record_unanswered(session=session, question=query, now=now)
        await session.commit()
    return entries


async def record_submission(
    *,
    session: AsyncSession,
    storage: Storage,
    member_id: int,
    kind: str,
    day: int | None,
    text: str,
    images: Sequence[CheckedImage],
    now: datetime,
) -> SubmitResult:
    """Record the entry under its images' keys, then store the images, then commit.

    Storage is content-addressed: another member's entry may already reference a file with
    the same key. So files are written only once the submission was accepted, and nothing
    is ever deleted: a refusal touches no file at all. A commit failing after the write
    leaves a file no entry references, which is harmless (the same bytes, reused by the
    next upload of that image; never served, as the page serves only referenced keys)."""
    unique = {image.storage_key(): image for image in images}
    try:
        if kind == "leave":
            result = await checkin.take_leave(
                session=session, member_id=member_id, now=now, day=day
            )
        else:
            result = await checkin.submit(
                session=session,
                member_id=member_id,
                kind=EntryKind(kind),
                text=text,
                images=list(unique),
                now=now,
                day=day,
            )
        for image in unique.values():
            await storage.put(image.data, image.content_type)
        await session.commit()
    except BaseException:
        await session.rollback()
        raise
    return result


async def owns_image(session: AsyncSession, *, member_id: int, key: str) -> bool:
    rows = await session.scalars(
        select(CheckinEntry.images).where(CheckinEntry.member_id == member_id)
    )
    return any(key in (images or ()) for images in rows)
