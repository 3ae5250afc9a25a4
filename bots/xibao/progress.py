"""A 喜报 broadcast's progress: per group sent, failed, pending or waiting for the owner's
confirmation (customer groups), and why a poster is missing."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.errors import NotFound
from app.channels.reach import Channel
from app.models import MassSendResult, MassSendStatus, Member, OutboxMessage, OutboxStatus
from bots.xibao.models import Achievement, Broadcast, BroadcastTarget


@dataclass(frozen=True, slots=True)
class GroupProgress:
    group_id: int | None
    group_name: str
    channel: str
    status: str  # sent | failed | pending | awaiting_confirmation
    error: str | None


@dataclass(frozen=True, slots=True)
class Progress:
    broadcast_id: int
    achievement_id: int
    poster_missing: str | None  # why the 喜报 went out without a poster
    total: int
    sent: int
    failed: int
    pending: int
    awaiting_confirmation: int
    groups: list[GroupProgress]


_FAILED = (OutboxStatus.DEAD, OutboxStatus.CANCELLED)
_FAILED_REASONS = {
    2: "群发未送达：该群已解散或群主已不在群里（企业微信状态 2）。",
    3: "群发未送达：该客户群本周期的群发次数已用完（企业微信状态 3），已改为群SOP。",
}


def _group_status(
    target: BroadcastTarget,
    rows: dict[int, OutboxMessage],
    results: dict[int, MassSendResult],
) -> tuple[str, str | None]:
    if target.error is not None or target.outbox_id is None:
        return "failed", target.error or "没有可发送的消息。"
    row = rows.get(target.outbox_id)
    if row is None:
        return "failed", "发送记录已被删除。"
    if row.status in _FAILED:
        return "failed", row.last_error or "发送失败。"
    if target.channel == Channel.STAFF and row.status == OutboxStatus.SKIPPED:
        return "failed", "群SOP 已被跳过，未在群里发出。"
    if target.channel == Channel.STAFF and row.status != OutboxStatus.SENT:
        return "awaiting_confirmation", None  # waits for its staff member to post it
    if row.status != OutboxStatus.SENT:
        return "pending", None
    if target.channel != Channel.CUSTOMER_GROUP:
        return "sent", None
    # A mass send went out only once the owner confirmed it in WeCom.
    result = results.get(target.outbox_id)
    if result is None or result.status == MassSendStatus.AWAITING:
        return "awaiting_confirmation", None
    if result.status == MassSendStatus.FAILED:
        return "failed", _FAILED_REASONS.get(
            result.wecom_status or 0, f"群发未送达（企业微信状态 {result.wecom_status}）。"
        )
    return "sent", None


async def progress(*, session: AsyncSession, broadcast_id: int) -> Progress:
    broadcast = await session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise NotFound(f"喜报发送 {broadcast_id} 不存在。")
    targets = list(
        (
            await session.execute(
                select(BroadcastTarget)
                .where(BroadcastTarget.broadcast_id == broadcast_id)
                .order_by(BroadcastTarget.id)
            )
        ).scalars()
    )
    ids = [t.outbox_id for t in targets if t.outbox_id is not None]
    rows = {
        r.id: r
        for r in (
            await session.execute(select(OutboxMessage).where(OutboxMessage.id.in_(ids)))
        ).scalars()
    }
    results = {
        r.outbox_id: r
        for r in (
            await session.execute(select(MassSendResult).where(MassSendResult.outbox_id.in_(ids)))
        ).scalars()
    }
    groups = []
    for target in targets:
        status, error = _group_status(target, rows, results)
        groups.append(
            GroupProgress(target.group_id, target.group_name, target.channel, status, error)
        )
    counts = {s: sum(g.status == s for g in groups) for s in _STATUSES}
    return Progress(
        broadcast_id=broadcast.id,
        achievement_id=broadcast.achievement_id,
        poster_missing=broadcast.poster_missing,
        total=len(groups),
        sent=counts["sent"],
        failed=counts["failed"],
        pending=counts["pending"],
        awaiting_confirmation=counts["awaiting_confirmation"],
        groups=groups,
    )


_STATUSES = ("sent", "failed", "pending", "awaiting_confirmation")


async def broadcast_of(*, session: AsyncSession, achievement_id: int) -> Broadcast | None:
    statement = select(Broadcast).where(Broadcast.achievement_id == achievement_id)
    return (await session.execute(statement)).scalar_one_or_none()


@dataclass(frozen=True, slots=True)
class Listed:
    achievement: Achievement
    member_name: str
    broadcast_id: int | None


async def listing(
    *,
    session: AsyncSession,
    status: str | None,
    cohort_ids: Collection[int] | None,
    limit: int,
) -> list[Listed]:
    """The newest achievements with their student's name and broadcast, in one query."""
    query = (
        select(Achievement, Member.name, Broadcast.id)
        .join(Member, Member.id == Achievement.member_id)
        .outerjoin(Broadcast, Broadcast.achievement_id == Achievement.id)
        .order_by(Achievement.id.desc())
        .limit(limit)
    )
    if status is not None:
        query = query.where(Achievement.status == status)
    if cohort_ids is not None:
        query = query.where(Achievement.cohort_id.in_(cohort_ids))
    rows = (await session.execute(query)).all()
    return [Listed(a, name or "同学", broadcast_id) for a, name, broadcast_id in rows]
