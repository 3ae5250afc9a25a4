"""打卡 by app 1:1 message from internal members: `打卡 …` or an image → today's check-in,
answered by an app message with the streak and points."""

from __future__ import annotations

from typing import cast

from app.wecom.events import ImageMessage, Message
from bots.checkin import app_checkin as checkin
from bots.checkin.service import CheckinError
from bots.dispatch import Context, Router, SkipHandler
from bots.rules import Regex

router = Router("checkin")
# Ahead of keyword Q&A (priority 50): a `打卡 …` message is a check-in, not a question.
BEFORE_QA = {"priority": 30, "block": True}


@router.on_message("text", Regex(checkin.CHECKIN_TEXT), **BEFORE_QA)
async def on_checkin_text(ctx: Context) -> None:
    """成员在应用里发「打卡 今天的内容」：记为今天的打卡，回复连续天数和积分。"""
    text = ctx.matched["match"].group("text").strip()
    await _check_in(ctx, checkin.AppCheckin(text=text or None, image=None), hint=True)


@router.on_message("image", **BEFORE_QA)
async def on_checkin_image(ctx: Context) -> None:
    """成员在应用里发图片：记为今天打卡的配图。不是学员的成员发图片，交给后面的处理。"""
    event = cast(ImageMessage, ctx.event)
    key = checkin.image_key(pic_url=event.pic_url, media_id=event.media_id)
    if key is None:
        raise SkipHandler
    await _check_in(ctx, checkin.AppCheckin(text=None, image=key), hint=False)


async def _check_in(ctx: Context, sent: checkin.AppCheckin, *, hint: bool) -> None:
    event = cast(Message, ctx.event)
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
                member_id=member_id,
                cohort_id=cohort_id,
                sent=sent,
                now=ctx.now,
            )
            answer = checkin.confirmation(result)
        except CheckinError as exc:
            answer = f"打卡没有成功：{exc.message}"
    await checkin.reply(
        session=ctx.session,
        userid=event.from_user,
        # The dedupe key, not the raw MsgId: it is bounded (a hash past a length), so the
        # outbox key always fits its column.
        msg_key=event.dedupe_key,
        content=answer,
        now=ctx.now,
    )
