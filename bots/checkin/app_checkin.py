"""打卡 by app 1:1 message: internal members (a `userid`) check in by writing `打卡 …` or
sending an image to the app. Messages of one day add up: an image after `打卡 …` keeps the
text, a second image is appended (≤ 9), a new `打卡 …` text replaces the text.

An image is downloaded (`media/get`: WeCom keeps it 3 days) before the event's transaction
opens (the handler's `prepare` step), checked as an H5 upload is (type by content, size;
identifying metadata such as GPS stripped) and stored like one: content-addressed, the file
written only once the check-in was accepted. An image WeCom no longer has (40007) or that
is no image still counts as the day's check-in, and the answer says the image was not
saved; WeCom unreachable or busy leaves the event to the sweeper, which runs it (and the
download) again. Rows from before kept WeCom's PicUrl or `wecom-media:{MediaId}`; the page
shows those as a chip.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.api.h5.uploads import CheckedImage, UploadRefused, check_image
from app.channels.messages import OutMessage
from app.channels.reach import Channel, Destination, enqueue_message
from app.errors import RetryLater
from app.models import Member
from app.storage import Storage
from app.wecom.client import INVALID_MEDIA_ID, WeComClient
from app.wecom.errors import WeComAPIError, WeComError
from bots.checkin import service, store
from bots.checkin.models import EntryKind
from bots.checkin.service import SubmitResult

NOT_A_MEMBER = "你还不在任何一期训练营里，暂时不能打卡。如有疑问请联系助教老师。"
SOURCE = "app"
# The download's own bound (the client has its HTTP timeouts; this caps token refresh and
# busy retries too), so a stuck WeCom cannot hold a dispatcher worker for long.
FETCH_TIMEOUT_S = 30.0
EXPIRED = "图片已过期"
NOT_GIVEN = "企业微信没有提供这张图片"

logger = logging.getLogger(__name__)


class ImageNotYet(RetryLater):
    """media/get failed for now (WeCom unreachable, busy, rate-limited): the event stays
    `received` and the sweeper runs it again, download included (a bounded number of
    times, well within the media's 3 days)."""


@dataclass(frozen=True, slots=True)
class UnsavedImage:
    """An image that cannot be stored, and why (Chinese, for the member)."""

    reason: str


@dataclass(frozen=True, slots=True)
class AppCheckin:
    text: str | None  # None: an image message (keep the day's text)
    image: CheckedImage | None


async def fetch_image(wecom: WeComClient | None, *, media_id: str) -> CheckedImage | UnsavedImage:
    """The image a member sent, downloaded and checked; UnsavedImage when it never will be;
    ImageNotYet when it may be later. Runs before the event's transaction (no session)."""
    if wecom is None:
        return UnsavedImage(NOT_GIVEN)  # no WeCom client configured: nothing to ask
    try:
        async with asyncio.timeout(FETCH_TIMEOUT_S):
            data = await wecom.get_media(media_id=media_id)
    except TimeoutError as exc:
        raise ImageNotYet(f"media/get {media_id}: timed out") from exc
    except WeComError as exc:
        if exc.retryable:
            raise ImageNotYet(f"media/get {media_id}: {exc}") from exc
        if isinstance(exc, WeComAPIError) and exc.errcode == INVALID_MEDIA_ID:
            return UnsavedImage(EXPIRED)
        logger.warning("media/get %s refused: %s", media_id, exc)  # e.g. no permission
        return UnsavedImage(NOT_GIVEN)
    try:
        # Pillow and SHA-256 over up to 10 MB: off the event loop.
        return await asyncio.to_thread(check_image, data)
    except UploadRefused as refused:
        return UnsavedImage(refused.message)


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
    *,
    session: AsyncSession,
    storage: Storage,
    member_id: int,
    cohort_id: int,
    sent: AppCheckin,
    now: datetime,
) -> SubmitResult:
    """Submit today's check-in, merged with what the member already sent today; the sent
    image's file is written only once the submission was accepted (content-addressed files
    may be shared: a refusal must touch none). If the event's commit then fails, the file
    stays unreferenced, which is harmless (the same bytes under the same key)."""
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
    if sent.image is not None and sent.image.storage_key() not in images:
        images.append(sent.image.storage_key())
    text = sent.text if sent.text is not None else (existing.text if existing else "")
    result = await service.submit(
        session=session,
        member_id=member_id,
        kind=EntryKind.CHECKIN,
        text=text or "打卡",  # a bare `打卡` is a check-in, not an empty form
        images=images,
        now=now,
        source=SOURCE,
    )
    if sent.image is not None:
        await storage.put(sent.image.data, sent.image.content_type)
    return result


def unsaved_note(unsaved: UnsavedImage) -> str:
    return f"⚠️ 图片没能保存（{unsaved.reason}），请重新发送图片。"


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
        destination=Destination(Channel.APP_MESSAGE, userid),
        message=OutMessage("text", content=content),
        now=now,
    )
