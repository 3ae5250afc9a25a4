"""喜报: record an achievement, render the cohort's script and a poster, fan both out to the
groups through the outbox (the broadcast's progress: `bots.xibao.progress`; the 结营证书:
`bots.xibao.certificate`).

Keyword-only functions that flush but never commit: the caller's transaction (one admin
request) stores the achievement, its broadcast and every outbox row together, or nothing.
Each group gets one send under `xibao:{achievement_id}:{group_id}` (customer groups the text
with the poster attached, robots and app chats the poster as an image message), so a repeated
approval or a restarted sender can never send a group the 喜报 twice.

A server that cannot draw the poster (no CJK font) degrades rather than refuses: every group
gets the script's text (customer groups without an attachment), and the broadcast records
why the poster is missing (`poster_missing`), which the admin answers show and the log warns
about. Only the 结营证书, which is nothing but a picture, answers 503 then.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.audit import AuditTrail
from app.admin.common import Actor, snapshot
from app.admin.errors import Conflict, InvalidInput, NotFound
from app.admin.models import Cohort, CohortGroup, CohortMember
from app.channels.routing import Routing
from app.models import Group, GroupStatus, Member
from bots.xibao import fanout, poster
from bots.xibao.models import DETAIL_MAX as DETAIL_MAX
from bots.xibao.models import TITLE_MAX as TITLE_MAX
from bots.xibao.models import (
    Achievement,
    AchievementSource,
    AchievementStatus,
    Broadcast,
)
from scripts_library.errors import RenderError, ScriptNotFoundError
from scripts_library.models import MsgType, Script
from scripts_library.render import render
from scripts_library.service import get_script
from scripts_library.variables import RenderContext, zh_weekday

SCRIPT_KEY = "xibao"  # a cohort may override it with `xibao.{channel_state}`
FALLBACK_NAME = "同学"
H5_REPORTER = "h5"
AUDIT = AuditTrail("achievements")

logger = logging.getLogger(__name__)


def zh_full_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


# --------------------------------------------------------------------------- recording


async def _member(session: AsyncSession, member_id: int) -> Member:
    member = await session.get(Member, member_id)
    if member is None:
        raise InvalidInput("member_id", f"学员 {member_id} 不存在。")
    return member


async def member_cohort(*, session: AsyncSession, member_id: int) -> Cohort | None:
    """The cohort the member joined last (a student may come back for a later 期)."""
    statement = (
        select(Cohort)
        .join(CohortMember, CohortMember.cohort_id == Cohort.id)
        .where(CohortMember.member_id == member_id)
        .order_by(CohortMember.joined_at.desc(), CohortMember.id.desc())
        .limit(1)
    )
    return (await session.execute(statement)).scalar_one_or_none()


def _checked_text(title: str, detail: str) -> tuple[str, str]:
    title, detail = title.strip(), detail.strip()
    if not title:
        raise InvalidInput("title", "请填写喜报标题（如：出单啦、上岸了）。")
    if len(title) > TITLE_MAX:
        raise InvalidInput("title", f"喜报标题不能超过 {TITLE_MAX} 个字。")
    if len(detail) > DETAIL_MAX:
        raise InvalidInput("detail", f"喜报详情不能超过 {DETAIL_MAX} 个字。")
    return title, detail


async def record_achievement(
    *,
    session: AsyncSession,
    member_id: int,
    title: str,
    detail: str,
    group_ids: Sequence[int] | None,
    actor: Actor,
    now: datetime,
    default_tz: str,
    routing: Routing,
) -> tuple[Achievement, Broadcast]:
    """An operator's achievement, approved at once and broadcast (audited)."""
    member, achievement = await _new_achievement(
        session,
        member_id,
        title,
        detail,
        status=AchievementStatus.APPROVED,
        source=AchievementSource.ADMIN,
        group_ids=list(group_ids) if group_ids is not None else None,
        created_by=actor.name,
        created_at=now,
        approved_by=actor.name,
        approved_at=now,
    )
    return await _announce(
        session, achievement, member, "create", actor, now, default_tz=default_tz, routing=routing
    )


async def report_achievement(
    *, session: AsyncSession, member_id: int, title: str, detail: str, now: datetime
) -> Achievement:
    """A student's own report from their H5 page: pending until an operator approves it.
    Raises InvalidInput (field and Chinese reason) for bad input."""
    _, achievement = await _new_achievement(
        session,
        member_id,
        title,
        detail,
        status=AchievementStatus.PENDING,
        source=AchievementSource.H5,
        group_ids=None,
        created_by=H5_REPORTER,
        created_at=now,
    )
    return achievement


async def _new_achievement(
    session: AsyncSession, member_id: int, title: str, detail: str, **fields: object
) -> tuple[Member, Achievement]:
    """A checked, stored achievement of the member, in the cohort they joined last."""
    title, detail = _checked_text(title, detail)
    member = await _member(session, member_id)
    cohort = await member_cohort(session=session, member_id=member.id)
    achievement = Achievement(
        member_id=member.id,
        cohort_id=cohort.id if cohort else None,
        title=title,
        detail=detail,
        **fields,
    )
    session.add(achievement)
    await session.flush()
    return member, achievement


async def _announce(
    session: AsyncSession,
    achievement: Achievement,
    member: Member,
    action: str,
    actor: Actor,
    now: datetime,
    *,
    default_tz: str,
    routing: Routing,
) -> tuple[Achievement, Broadcast]:
    """An approved achievement broadcast, and the approval audited (`action`)."""
    broadcast = await _broadcast(
        session=session,
        achievement=achievement,
        member=member,
        now=now,
        default_tz=default_tz,
        routing=routing,
    )
    after = snapshot(achievement)
    await AUDIT.record(action, achievement.id, session=session, actor=actor, now=now, after=after)
    return achievement, broadcast


async def approve_achievement(
    *,
    session: AsyncSession,
    achievement_id: int,
    group_ids: Sequence[int] | None,
    actor: Actor,
    now: datetime,
    default_tz: str,
    routing: Routing,
) -> tuple[Achievement, Broadcast]:
    """Approve a reported achievement and broadcast it (Conflict if it already was);
    audited."""
    achievement = await session.get(Achievement, achievement_id, with_for_update=True)
    if achievement is None:
        raise NotFound(f"喜报 {achievement_id} 不存在。")
    if achievement.status != AchievementStatus.PENDING:
        raise Conflict(f"喜报 {achievement_id} 已经审核通过并发出，不会重复发送。")
    member = await _member(session, achievement.member_id)
    achievement.status = AchievementStatus.APPROVED
    achievement.approved_by, achievement.approved_at = actor.name, now
    if group_ids is not None:
        achievement.group_ids = list(group_ids)
    return await _announce(
        session, achievement, member, "approve", actor, now, default_tz=default_tz, routing=routing
    )


# --------------------------------------------------------------------------- broadcasting


async def _groups(session: AsyncSession, achievement: Achievement) -> list[Group]:
    if achievement.group_ids is not None:
        wanted = list(dict.fromkeys(achievement.group_ids))
        if not wanted:
            raise InvalidInput(
                "group_ids", "请至少选择一个群，或不填（发到学员所在期次的所有群）。"
            )
        found = {
            g.id: g
            for g in (await session.execute(select(Group).where(Group.id.in_(wanted)))).scalars()
        }
        missing = [str(i) for i in wanted if i not in found]
        if missing:
            raise InvalidInput("group_ids", f"群 {', '.join(missing)} 不存在。")
        return [found[i] for i in wanted]
    if achievement.cohort_id is None:
        raise InvalidInput("group_ids", "该学员不在任何期次里：请用 group_ids 指定发到哪些群。")
    groups = list(
        (
            await session.execute(
                select(Group)
                .join(CohortGroup, CohortGroup.group_id == Group.id)
                .where(
                    CohortGroup.cohort_id == achievement.cohort_id,
                    Group.status == GroupStatus.ACTIVE,
                )
                .order_by(Group.id)
            )
        ).scalars()
    )
    if not groups:
        raise InvalidInput("group_ids", "学员所在期次还没有群：请先添加群，或用 group_ids 指定。")
    return groups


async def _script(session: AsyncSession, cohort: Cohort | None) -> Script:
    keys = ([f"{SCRIPT_KEY}.{cohort.channel_state}"] if cohort else []) + [SCRIPT_KEY]
    for key in keys:
        try:
            script = await get_script(session=session, key=key)
        except ScriptNotFoundError:
            continue
        if script.msgtype not in (MsgType.TEXT, MsgType.MARKDOWN):
            raise Conflict(f"喜报话术「{key}」须为 text 或 markdown（海报会单独附上）。")
        return script
    raise Conflict(
        f"话术库里没有喜报话术「{SCRIPT_KEY}」：请先导入默认话术包（campbot scripts import）。"
    )


@dataclass(frozen=True, slots=True)
class _Occasion:
    """What the script and the poster say, shared by every group."""

    member_name: str
    cohort: Cohort | None
    local_day: date

    def context(self, achievement: Achievement, group: Group) -> RenderContext:
        cohort = self.cohort
        return RenderContext(
            student_name=self.member_name,
            achievement_title=achievement.title,
            achievement_detail=achievement.detail,
            cohort_name=cohort.name if cohort else None,
            camp_name=cohort.camp if cohort else None,
            total_days=cohort.days if cohort else None,
            day=(self.local_day - cohort.start_date).days if cohort else None,
            date=f"{self.local_day.month}月{self.local_day.day}日",
            weekday=zh_weekday(self.local_day),
            group_name=group.name or "",
        )

    def poster(self, achievement: Achievement) -> tuple[bytes | None, str | None]:
        """(the PNG, None), or (None, why it cannot be drawn) when the server has no CJK
        font: the 喜报 then goes out as text."""
        cohort = self.cohort
        try:
            png = poster.xibao_poster(
                name=self.member_name,
                title=achievement.title,
                detail=achievement.detail,
                cohort=f"{cohort.camp} · {cohort.name}" if cohort else "",
                date=zh_full_date(self.local_day),
            )
        except poster.FontMissingError as exc:
            return None, str(exc)
        return png, None


async def _broadcast(
    *,
    session: AsyncSession,
    achievement: Achievement,
    member: Member,
    now: datetime,
    default_tz: str,
    routing: Routing,
) -> Broadcast:
    cohort = await session.get(Cohort, achievement.cohort_id) if achievement.cohort_id else None
    groups = await _groups(session, achievement)
    script = await _script(session, cohort)
    local_day = now.astimezone(ZoneInfo(cohort.timezone if cohort else default_tz)).date()
    occasion = _Occasion(member.name or FALLBACK_NAME, cohort, local_day)
    png, missing = await poster.off_loop(lambda: occasion.poster(achievement))
    if missing is not None:
        logger.warning(
            "喜报 %d goes out as text only: %s",
            achievement.id,
            missing,
            extra={"achievement_id": achievement.id},
        )
    broadcast = Broadcast(
        achievement_id=achievement.id,
        script_key=script.key,
        poster=png,
        poster_missing=missing,
        created_at=now,
    )
    session.add(broadcast)
    await session.flush()
    for group in groups:
        try:
            text = render(script, occasion.context(achievement, group))
        except RenderError as exc:
            raise Conflict(f"喜报话术「{script.key}」无法渲染：{exc}") from exc
        session.add(
            await fanout.target(
                session,
                broadcast,
                achievement,
                group,
                text=text,
                png=png,
                now=now,
                routing=routing,
                delivery=script.group_delivery,
            )
        )
    await session.flush()
    return broadcast
