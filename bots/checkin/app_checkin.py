"""打卡 by app 1:1 message: internal members (a `userid`) check in by writing `打卡 …` or
sending an image to the app. Messages of one day add up: an image after `打卡 …` keeps the
text, a second image is appended (≤ 9), a new `打卡 …` text replaces the text.

An image is stored by reference, not downloaded: its key is WeCom's PicUrl when the
callback has one (an https URL the page can show), else `wecom-media:{MediaId}` (a
temporary media id, fetchable with `media/get` for 3 days).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.messages import OutMessage
from app.channels.routes import Channel, Route, enqueue_message
from app.models import Member
from bots.checkin import service, store
from bots.checkin.models import EntryKind
from bots.checkin.service import SubmitResult

# `打卡` first, then the end or a separator: "打卡 今天读完第三章", "打卡：…"; not "打卡率多少".
CHECKIN_TEXT = re.compile(r"^\s*打卡(?:$|[\s:：,，。.!！]+)(?P<text>.*)", re.DOTALL)
MEDIA_PREFIX = "wecom-media:"
NOT_A_MEMBER = "你还不在任何一期训练营里，暂时不能打卡。如有疑问请联系助教老师。"
SOURCE = "app"


@dataclass(frozen=True, slots=True)
class AppCheckin:
    text: str | None  # None: an image message (keep the day's text)
    image: str | None


def image_key(*, pic_url: str, media_id: str) -> str | None:
    if pic_url.strip():
        return pic_url.strip()
    return f"{MEDIA_PREFIX}{media_id.strip()}" if media_id.strip() else None


async def student(*, session: AsyncSession, userid: str) -> tuple[int, int] | None:
    """(member id, cohort id) of the internal member `userid`, or None if not in a cohort."""
    if not userid:
        return None
    member_id = await session.scalar(select(Member.id).where(Member.userid == userid))
    if member_id is None:
        return None
    cohort_id = await service.member_cohort(session=session, member_id=member_id)
    return None if cohort_id is None else (member_id, cohort_id)


async def check_in(
    *, session: AsyncSession, member_id: int, cohort_id: int, sent: AppCheckin, now: datetime
) -> SubmitResult:
    """Submit today's check-in, merged with what the member already sent today."""
    today = (await service.camp_day(session=session, cohort_id=cohort_id, now=now)).day
    existing = None
    if today is not None:
        existing = await store.find_entry(
            session=session,
            member_id=member_id,
            cohort_id=cohort_id,
            day=today,
            kind=EntryKind.CHECKIN,
        )
    images = list(existing.images or []) if existing is not None else []
    if sent.image is not None and sent.image not in images:
        images.append(sent.image)
    text = sent.text if sent.text is not None else (existing.text if existing else "")
    return await service.submit(
        session=session,
        member_id=member_id,
        kind=EntryKind.CHECKIN,
        text=text or "打卡",  # a bare `打卡` is a check-in, not an empty form
        images=images,
        now=now,
        source=SOURCE,
    )


def confirmation(result: SubmitResult) -> str:
    standing = result.standing
    head = "✅ 打卡成功" if result.created else "✏️ 已更新今天的打卡"
    lines = [
        f"{head}（第 {result.entry.day} 天）",
        f"连续打卡 {standing.streak} 天，积分 {standing.points}，"
        f"排名第 {standing.rank}/{standing.cohort_size}",
    ]
    if result.milestone_bonus:
        lines.append(f"🎉 连续打卡达成，奖励 {result.milestone_bonus} 积分！")
    return "\n".join(lines)


async def reply(
    *, session: AsyncSession, userid: str, msg_key: str, content: str, now: datetime
) -> None:
    """The answer, as an app message to the member through the outbox (once per message)."""
    await enqueue_message(
        session=session,
        key=f"checkin-reply:{userid}:{msg_key}",
        route=Route(Channel.APP_MESSAGE, userid),
        message=OutMessage("text", content=content),
        now=now,
    )
