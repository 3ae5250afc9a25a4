"""The outbox as operators see it: what waits, what was sent, what died and why.

Operators may retry a dead row (after fixing its cause: a robot key, a permission) and
cancel a pending one. Both take the row lock first, so a sender claiming it at the same
moment either got it before (the row is no longer in the state the action needs: 409) or
finds it changed.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CompoundSelect, func, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.audit import AuditTrail
from app.admin.common import Actor, Page, get_or_404, json_value, page_of
from app.admin.errors import Conflict
from app.admin.models import CohortGroup, CohortMember
from app.channels.mass_send import MASS_CHANNELS, OVER_QUOTA_HINT, over_quota
from app.models import (
    Group,
    MassSendResult,
    MassSendStatus,
    Member,
    OutboxMessage,
    OutboxStatus,
)
from app.wecom.errors import HINTS

AUDIT = AuditTrail("outbox")
WHAT = "待发消息"
_STATUS_NAMES: dict[str, str] = {
    OutboxStatus.PENDING: "等待发送",
    OutboxStatus.CLAIMED: "已被发送进程领取",
    OutboxStatus.SENDING: "正在发送",
    OutboxStatus.SENT: "已发送",
    OutboxStatus.DEAD: "发送失败（dead）",
    OutboxStatus.CANCELLED: "已取消",
    OutboxStatus.AWAITING_STAFF: "等员工在聊天工具栏发送",
    OutboxStatus.SKIPPED: "已跳过",
}


@dataclass(frozen=True, slots=True)
class OutboxView:
    row: OutboxMessage
    hint: str | None  # what the operator can do about the last error, in Chinese


def hint_for(row: OutboxMessage) -> str | None:
    if row.channel in MASS_CHANNELS and over_quota(row.last_error):
        return OVER_QUOTA_HINT
    if row.last_errcode is not None:
        return HINTS.get(
            row.last_errcode, f"企业微信返回错误码 {row.last_errcode}，详见 last_error。"
        )
    if row.status == OutboxStatus.DEAD and row.last_error:
        return "CampBot 无法发送这条消息，原因见 last_error；修正后可重试。"
    return None


def _state(row: OutboxMessage) -> dict[str, object]:
    keys = ("status", "attempts", "not_before", "last_errcode", "last_error")
    return {key: json_value(getattr(row, key)) for key in keys}


def _status_name(status: str) -> str:
    return _STATUS_NAMES.get(status, status)


async def target_names(*, session: AsyncSession, targets: Collection[str]) -> dict[str, str]:
    """Who a row's `target` is, for people: the group a robot key or chat id posts into, the
    member a userid or external userid names (two queries whatever the number of rows)."""
    wanted = set(targets)
    if not wanted:
        return {}
    names: dict[str, str] = {}
    groups = await session.execute(
        select(Group.robot_key, Group.chat_id, Group.name, Group.id).where(
            or_(Group.robot_key.in_(wanted), Group.chat_id.in_(wanted))
        )
    )
    for robot_key, chat_id, name, group_id in groups:
        for key in (robot_key, chat_id):
            if key in wanted:
                names[key] = name or f"群 {group_id}"
    people = await session.execute(
        select(Member.external_userid, Member.userid, Member.name).where(
            or_(Member.external_userid.in_(wanted), Member.userid.in_(wanted))
        )
    )
    for external_userid, userid, name in people:
        for key in (external_userid, userid):
            if key in wanted and name:
                names[key] = name
    return names


def cohort_targets(*, cohort_id: int) -> CompoundSelect[Any]:
    """The outbox targets that are this cohort's, as a statement to filter by (a cohort's
    thousands of members bound as parameters would fail past the driver's limit): its
    groups' robot keys and chat ids, its members' userids and external userids."""
    in_cohort = CohortGroup.cohort_id == cohort_id
    member_in_cohort = CohortMember.cohort_id == cohort_id
    return union_all(
        *(
            select(column).join(CohortGroup, CohortGroup.group_id == Group.id).where(in_cohort)
            for column in (Group.robot_key, Group.chat_id)
        ),
        *(
            select(column)
            .join(CohortMember, CohortMember.member_id == Member.id)
            .where(member_in_cohort)
            for column in (Member.external_userid, Member.userid)
        ),
    )


async def get_outbox(*, session: AsyncSession, outbox_id: int) -> OutboxView:
    row = await get_or_404(OutboxMessage, outbox_id, session=session, what=WHAT)
    return OutboxView(row, hint_for(row))


async def list_outbox(
    *,
    session: AsyncSession,
    status: str | None,
    channel: str | None,
    target: str | None,
    limit: int,
    offset: int,
    targets: CompoundSelect[Any] | None = None,
) -> Page[OutboxView]:
    """Newest first; `targets` keeps the rows sent to one of them (`cohort_targets`)."""
    statement = select(OutboxMessage).order_by(OutboxMessage.id.desc())
    if targets is not None:
        statement = statement.where(OutboxMessage.target.in_(targets))
    if status is not None:
        statement = statement.where(OutboxMessage.status == status)
    if channel is not None:
        statement = statement.where(OutboxMessage.channel == channel)
    if target is not None:
        statement = statement.where(OutboxMessage.target == target)
    page = await page_of(statement, session=session, limit=limit, offset=offset)
    return Page([OutboxView(row, hint_for(row)) for row in page.items], page.total)


async def _transition(
    *,
    session: AsyncSession,
    actor: Actor,
    now: datetime,
    outbox_id: int,
    action: str,
    source: OutboxStatus,
    refusal: str,
) -> OutboxView:
    row = await get_or_404(OutboxMessage, outbox_id, session=session, what=WHAT, lock=True)
    if row.status != source:
        raise Conflict(f"消息 {outbox_id} 当前状态为「{_status_name(row.status)}」，{refusal}")
    before = _state(row)
    if action == "retry":
        row.status, row.attempts, row.not_before = OutboxStatus.PENDING, 0, now
        row.claimed_by, row.lease_until = None, None
    else:
        row.status = OutboxStatus.CANCELLED
    row.updated_at = now
    await session.flush()
    await AUDIT.record(
        action, outbox_id, session=session, actor=actor, now=now, before=before, after=_state(row)
    )
    return OutboxView(row, hint_for(row))


async def retry(
    *, session: AsyncSession, actor: Actor, now: datetime, outbox_id: int
) -> OutboxView:
    """A dead row goes back to pending, due now, with its attempts reset."""
    return await _transition(
        session=session,
        actor=actor,
        now=now,
        outbox_id=outbox_id,
        action="retry",
        source=OutboxStatus.DEAD,
        refusal="只有发送失败（dead）的消息可以重试。",
    )


async def cancel(
    *, session: AsyncSession, actor: Actor, now: datetime, outbox_id: int
) -> OutboxView:
    """A pending row will not be sent."""
    return await _transition(
        session=session,
        actor=actor,
        now=now,
        outbox_id=outbox_id,
        action="cancel",
        source=OutboxStatus.PENDING,
        refusal="只有等待发送（pending）的消息可以取消。",
    )


async def awaiting_confirmation(
    *, session: AsyncSession, limit: int
) -> list[tuple[OutboxMessage, MassSendResult]]:
    """Mass sends whose task waits for its sender (the group owner or staff member) to
    confirm it in WeCom, oldest first."""
    rows = await session.execute(
        select(OutboxMessage, MassSendResult)
        .join(MassSendResult, MassSendResult.outbox_id == OutboxMessage.id)
        .where(MassSendResult.status == MassSendStatus.AWAITING)
        .order_by(MassSendResult.created_at, MassSendResult.outbox_id)
        .limit(limit)
    )
    return [(row, result) for row, result in rows.all()]


async def count_by_status(*, session: AsyncSession, statuses: Collection[str]) -> dict[str, int]:
    found = await session.execute(
        select(OutboxMessage.status, func.count())
        .where(OutboxMessage.status.in_(statuses))
        .group_by(OutboxMessage.status)
    )
    return {status: int(n) for status, n in found.all()}
