"""The welcome: enroll a new contact by channel, welcome them with their personal H5 link,
tag them by channel, and tell their staff member when they leave.

Keyword-only functions that flush but never commit (the dispatcher's event transaction is
the unit of work). Every welcome CampBot meant to send leaves an outbox row under
`welcome:{external_userid}:{welcome_code}`: `pending`/`sent` when it went out, `dead` with the
reason in `last_error` when it could not (code expired, no script, the script does not render)
— so operators find every missed welcome with `GET /admin/api/outbox?status=dead`.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app import outbox
from app.admin.cohorts.service import CohortHook, cohort_for_state
from app.admin.h5_tokens import member_url
from app.admin.members.service import assign_cohort
from app.admin.models import Cohort, CohortMember
from app.channels.messages import Article, OutMessage
from app.channels.reach import Channel, Destination, enqueue_message
from app.models import Member, OutboxMessage, OutboxStatus
from bots.membership.service import ensure_external_member
from scripts_library.errors import RenderError, ScriptNotFoundError
from scripts_library.models import MsgType, Script
from scripts_library.render import render
from scripts_library.service import get_script
from scripts_library.variables import RenderContext, zh_date

SCRIPT_KEY = "welcome"  # a cohort may override it with `welcome.{channel_state}`
FALLBACK_NAME = "同学"
FALLBACK_ASSISTANT = "助教老师"
MAX_ATTACHMENTS = 9
CARD_TITLE = "我的专属学习页"
CARD_DESC_MAX_BYTES = 512


@dataclass(frozen=True, slots=True)
class Enrollment:
    member: Member
    cohort: Cohort


class WelcomeNotSendable(Exception):
    """The welcome script cannot become a welcome message (the text says why, in Chinese)."""


def welcome_key(external_userid: str, welcome_code: str) -> str:
    return f"welcome:{external_userid}:{welcome_code}"


async def enroll(
    *,
    session: AsyncSession,
    external_userid: str,
    channel_state: str,
    now: datetime,
    hooks: Collection[CohortHook],
) -> Enrollment | None:
    """Enroll the contact in the cohort whose `channel_state` is the event's State (the
    cohort `hooks` hear the join: member-day schedules re-plan).

    No such cohort: None, and no cohort is guessed. A contact who came another way (a
    personal QR code, a sales link) is no camp student, and with several camps running a
    guess would push one camp's daily content to another's students.
    """
    if not channel_state:
        return None
    cohort = await cohort_for_state(session=session, channel_state=channel_state)
    if cohort is None:
        return None
    member = await ensure_external_member(
        session=session, external_userid=external_userid, now=now
    )
    await assign_cohort(
        session=session, member_id=member.id, cohort_id=cohort.id, now=now, hooks=hooks
    )
    return Enrollment(member, cohort)


def remember_name(member: Member, name: str | None, *, now: datetime) -> None:
    """Keep the WeChat name CampBot learned; a name operators already set is theirs."""
    if name and not member.name:
        member.name, member.updated_at = name, now


async def queue_welcome(
    *,
    session: AsyncSession,
    enrollment: Enrollment,
    welcome_code: str,
    staff_userid: str,
    student_name: str | None,
    public_base_url: str,
    now: datetime,
) -> int | None:
    """Enqueue the cohort's welcome; the new row's id to send at once, or None (already
    enqueued, or recorded as `dead` with the reason it cannot be sent)."""
    member, cohort = enrollment.member, enrollment.cohort
    key = welcome_key(member.external_userid or "", welcome_code)
    try:
        script = await _welcome_script(session, cohort.channel_state)
        h5_url = await member_url(
            session=session, member_id=member.id, public_base_url=public_base_url, now=now
        )
        context = RenderContext(
            student_name=student_name or FALLBACK_NAME,
            cohort_name=cohort.name,
            camp_name=cohort.camp,
            total_days=cohort.days,
            h5_url=h5_url,
            assistant_name=await _assistant_name(session, staff_userid),
        )
        payload = _payload(script, context, card=h5_card(h5_url=h5_url, cohort=cohort))
    except WelcomeNotSendable as exc:
        await record_unsent(
            session=session, key=key, welcome_code=welcome_code, reason=str(exc), now=now
        )
        return None
    return await outbox.enqueue(
        session=session,
        key=key,
        channel=Channel.WELCOME,
        target=welcome_code,
        payload=payload,
        now=now,
    )


async def record_unsent(
    *, session: AsyncSession, key: str, welcome_code: str, reason: str, now: datetime
) -> None:
    """The welcome's row, `dead` from the start with `reason` (nothing is sent)."""
    row_id = await outbox.enqueue(
        session=session,
        key=key,
        channel=Channel.WELCOME,
        target=welcome_code,
        payload={"text": "", "attachments": []},
        now=now,
    )
    if row_id is not None:  # an existing row already tells what became of this welcome
        await session.execute(
            update(OutboxMessage)
            .where(OutboxMessage.id == row_id)
            .values(status=OutboxStatus.DEAD, last_error=reason, updated_at=now)
        )


def expired_reason(*, created_at: datetime, now: datetime) -> str:
    late = int((now - created_at).total_seconds())
    return (
        f"欢迎语已过期（超过 20 秒）：处理时距学员添加好友已过 {late} 秒，"
        "企业微信不再接受这条欢迎语。"
    )


async def _welcome_script(session: AsyncSession, channel_state: str) -> Script:
    for key in (f"{SCRIPT_KEY}.{channel_state}", SCRIPT_KEY):
        try:
            return await get_script(session=session, key=key)
        except ScriptNotFoundError:
            continue
    raise WelcomeNotSendable(f"话术库里没有欢迎语话术「{SCRIPT_KEY}」，欢迎语未发送。")


async def _assistant_name(session: AsyncSession, staff_userid: str) -> str:
    name = await session.scalar(select(Member.name).where(Member.userid == staff_userid))
    return name or FALLBACK_ASSISTANT


def h5_card(*, h5_url: str, cohort: Cohort) -> dict[str, Any]:
    """The link attachment to the student's personal page (no picurl: WeCom's default icon)."""
    desc = _clip(
        f"{cohort.camp}{cohort.name}：每天的任务、打卡、交作业、积分和排名", CARD_DESC_MAX_BYTES
    )
    return {"msgtype": "link", "link": {"title": CARD_TITLE, "desc": desc, "url": h5_url}}


def _payload(script: Script, context: RenderContext, *, card: dict[str, Any]) -> dict[str, Any]:
    """The WELCOME row's {"text", "attachments"}: a text script's text, or a news script's
    articles as link attachments; the H5 card always first."""
    if script.msgtype not in (MsgType.TEXT, MsgType.NEWS):
        raise WelcomeNotSendable(
            f"欢迎语话术「{script.key}」是 {script.msgtype} 消息；"
            "欢迎语只支持文本（text）或图文（news）。"
        )
    try:
        message = render(script, context)
    except RenderError as exc:
        raise WelcomeNotSendable(f"欢迎语话术「{script.key}」渲染失败：{exc}") from exc
    links = [_link(article) for article in message.articles]
    return {"text": message.content, "attachments": [card, *links][:MAX_ATTACHMENTS]}


def _link(article: Article) -> dict[str, Any]:
    link = {"title": article.title, "url": article.url, "desc": article.description}
    if article.picurl:
        link["picurl"] = article.picurl
    return {"msgtype": "link", "link": link}


def _clip(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max_bytes - 3].decode(errors="ignore") + "…"


async def queue_channel_tag(
    *,
    session: AsyncSession,
    external_userid: str,
    staff_userid: str,
    channel_state: str,
    tag_id: str,
    now: datetime,
) -> int | None:
    """Tag the contact (on this staff member's side) with the channel's corp tag."""
    return await outbox.enqueue(
        session=session,
        key=f"tag:{external_userid}:{channel_state}",
        channel=Channel.MARK_TAG,
        target=external_userid,
        payload={"userid": staff_userid, "add_tag": [tag_id], "remove_tag": []},
        now=now,
    )


async def queue_lost_alert(
    *,
    session: AsyncSession,
    external_userid: str,
    staff_userid: str,
    create_time: int,
    default_tz: str,
    now: datetime,
) -> int | None:
    """流失提醒: tell the staff member (app message) that a student deleted them."""
    member = await session.scalar(select(Member).where(Member.external_userid == external_userid))
    cohort = await _current_cohort(session, member.id) if member is not None else None
    name = member.name if member is not None else None
    who = f"「{name}」" if name else f"（未记录昵称，external_userid：{external_userid}）"
    where = f"（{cohort.camp}{cohort.name}）" if cohort is not None else ""
    tz = ZoneInfo(cohort.timezone if cohort is not None else default_tz)
    at = datetime.fromtimestamp(create_time, UTC).astimezone(tz)
    text = (
        f"【流失提醒】学员{who}{where}于 {zh_date(at.date())} {at:%H:%M} 删除了你。\n"
        "建议看看 TA 最近的打卡和提问，必要时请班主任通过学习群或其他方式跟进。"
    )
    return await enqueue_message(
        session=session,
        key=f"lost:{external_userid}:{create_time}",
        destination=Destination(Channel.APP_MESSAGE, staff_userid),
        message=OutMessage("text", content=text),
        now=now,
    )


async def _current_cohort(session: AsyncSession, member_id: int) -> Cohort | None:
    return await session.scalar(
        select(Cohort)
        .join(CohortMember, CohortMember.cohort_id == Cohort.id)
        .where(CohortMember.member_id == member_id)
        .order_by(CohortMember.joined_at.desc(), CohortMember.id.desc())
        .limit(1)
    )
