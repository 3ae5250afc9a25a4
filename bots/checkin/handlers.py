"""打卡 by app 1:1 message from internal members: `打卡 …` or an image → today's check-in,
answered by an app message with the streak and points.

An image is downloaded by the registration's `prepare` step, before the event's
transaction opens (bots.dispatch): a slow WeCom never holds the database. Handlers store
through `app.storage.app_storage()`, the storage the H5 page serves from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from app.storage import app_storage
from app.wecom.events import ImageMessage, Message, TextMessage
from bots.checkin import app_checkin as checkin
from bots.checkin.service import CHECKIN_TEXT, CheckinError
from bots.dispatch import Context, Router, SkipHandler
from bots.dispatch.rules import Regex

router = Router("checkin")
# Ahead of keyword Q&A (priority 50): a `打卡 …` message is a check-in, not a question.
BEFORE_QA = 30


@router.on(TextMessage, Regex(CHECKIN_TEXT), priority=BEFORE_QA)
async def on_checkin_text(ctx: Context[TextMessage]) -> None:
    """成员在应用里发「打卡 今天的内容」：记为今天的打卡，回复连续天数和积分。"""
    text = ctx.matched["match"].group("text").strip()
    await _check_in(ctx, checkin.AppCheckin(text=text or None, image=None), hint=True)


async def _download(ctx: Context[ImageMessage]) -> Mapping[str, Any]:
    """The image, fetched and checked before the transaction (for any sender: who is a
    student is a database question, answered only in the handler)."""
    media_id = ctx.event.media_id.strip()
    if not media_id:
        return {}
    return {"image": await checkin.fetch_image(ctx.wecom, media_id=media_id)}


@router.on(ImageMessage, prepare=_download, priority=BEFORE_QA)
async def on_checkin_image(ctx: Context[ImageMessage]) -> None:
    """成员在应用里发图片：存为今天打卡的配图。不是学员的成员发图片，交给后面的处理。"""
    fetched = ctx.matched.get("image")
    if fetched is None:
        raise SkipHandler  # no MediaId: nothing to fetch
    if isinstance(fetched, checkin.UnsavedImage):
        # The check-in still counts; the answer says the image was not kept.
        await _check_in(ctx, checkin.AppCheckin(text=None, image=None), unsaved=fetched)
    else:
        await _check_in(ctx, checkin.AppCheckin(text=None, image=fetched))


async def _check_in(
    ctx: Context[TextMessage] | Context[ImageMessage],
    sent: checkin.AppCheckin,
    *,
    hint: bool = False,
    unsaved: checkin.UnsavedImage | None = None,
) -> None:
    event: Message = ctx.event
    found = await checkin.student(session=ctx.session, userid=event.from_user)
    if found is None:
        if not hint:
            raise SkipHandler  # an image from someone in no camp: not a check-in attempt
        answer = checkin.NOT_A_MEMBER
    else:
        member_id, cohort_id = found
        try:
            result = await checkin.check_in(
                session=ctx.session,
                storage=app_storage(),
                member_id=member_id,
                cohort_id=cohort_id,
                sent=sent,
                now=ctx.now,
            )
            answer = checkin.confirmation(result)
        except CheckinError as exc:
            answer = f"打卡没有成功：{exc.message}"
        if unsaved is not None:
            answer = f"{answer}\n{checkin.unsaved_note(unsaved)}"
    await checkin.reply(
        session=ctx.session,
        userid=event.from_user,
        # The dedupe key, not the raw MsgId: it is bounded (a hash past a length), so the
        # outbox key always fits its column.
        msg_key=event.dedupe_key,
        content=answer,
        now=ctx.now,
    )
