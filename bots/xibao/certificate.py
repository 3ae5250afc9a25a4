"""The 结营证书: a member's certificate, drawn once their cohort has ended (503 on a server
that cannot draw it: no CJK font)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.errors import AdminError, Conflict, NotFound
from app.admin.models import Cohort, CohortMember
from app.models import Member
from bots.checkin.models import MemberScore
from bots.xibao import poster
from bots.xibao.service import FALLBACK_NAME, member_cohort, zh_full_date


class PosterUnavailable(AdminError):
    """The server cannot draw a certificate (no CJK font installed): say so and what to do."""

    status_code = 503


async def _drawn(draw: Callable[[], bytes]) -> bytes:
    try:
        return await poster.off_loop(draw)
    except poster.FontMissingError as exc:
        raise PosterUnavailable(str(exc)) from exc


async def certificate_png(
    *,
    session: AsyncSession,
    member_id: int,
    cohort_id: int | None,
    now: datetime,
) -> bytes:
    """The 结营证书 of a member whose cohort has reached its last day (Conflict before)."""
    member = await session.get(Member, member_id)
    if member is None:
        raise NotFound(f"学员 {member_id} 不存在。")
    cohort = await _certificate_cohort(session, member_id, cohort_id)
    last_day = cohort.start_date + timedelta(days=cohort.days)
    today = now.astimezone(ZoneInfo(cohort.timezone)).date()
    if today < last_day:
        raise Conflict(
            f"「{cohort.camp} {cohort.name}」{zh_full_date(last_day)}结营，结营后才能生成证书。"
        )
    score = await session.get(MemberScore, (member_id, cohort.id))
    summary = (
        f"打卡 {score.checked_days} 天 · 作业 {score.homework_days} 次 · 积分 {score.points}"
        if score is not None
        else ""
    )
    return await _drawn(
        lambda: poster.certificate(
            name=member.name or FALLBACK_NAME,
            camp=cohort.camp,
            cohort=cohort.name,
            days=cohort.days,
            date=zh_full_date(last_day),
            summary=summary,
        )
    )


async def _certificate_cohort(
    session: AsyncSession, member_id: int, cohort_id: int | None
) -> Cohort:
    if cohort_id is None:
        cohort = await member_cohort(session=session, member_id=member_id)
        if cohort is None:
            raise Conflict(f"学员 {member_id} 不在任何期次里，无法生成结营证书。")
        return cohort
    enrolled = await session.scalar(
        select(CohortMember.id).where(
            CohortMember.member_id == member_id, CohortMember.cohort_id == cohort_id
        )
    )
    cohort = await session.get(Cohort, cohort_id)
    if cohort is None or enrolled is None:
        raise NotFound(f"学员 {member_id} 不在期次 {cohort_id} 里。")
    return cohort
