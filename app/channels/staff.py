"""The `staff` channel: 群SOP items, outbox rows a person sends (ARCHITECTURE §2).

A customer group (or a 1:1 chat with an external student) cannot take an app's message
without spending the 群发 quota, so a push routed to 群SOP (`app.channels.routing`) is an
outbox row on this channel: target the chat, `payload.sender` the staff member to post it,
`not_before` its time. The sender never claims these rows (`app.outbox.STAFF_CHANNEL`).
Their life:

    pending ──(due; its staff member told)──▶ awaiting_staff ──(posted)──▶ sent
       │                                           └──────────(skipped)──▶ skipped
       └──────────────(posted or skipped before the telling)──────────────┘

Each move is one guarded UPDATE (… WHERE status IN (what it may come from)), so two
instances telling, or a double tap in the chat toolbar, change a row once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.channels.reach import Channel
from app.models import OutboxMessage, OutboxStatus

OPEN = (OutboxStatus.PENDING, OutboxStatus.AWAITING_STAFF)


async def take_due(
    *, session: AsyncSession, now: datetime, limit: int = 500
) -> list[OutboxMessage]:
    """Pending items whose time has come, moved to `awaiting_staff` for the caller to tell
    their staff members about (SKIP LOCKED: another instance takes the others)."""
    due = (
        (
            await session.execute(
                select(OutboxMessage)
                .where(
                    OutboxMessage.status == OutboxStatus.PENDING,
                    OutboxMessage.channel == Channel.STAFF,
                    OutboxMessage.not_before <= now,
                )
                .order_by(OutboxMessage.not_before, OutboxMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        .scalars()
        .all()
    )
    for row in due:
        row.status, row.updated_at = OutboxStatus.AWAITING_STAFF, now
    return list(due)


def is_due(now: datetime) -> tuple[ColumnElement[bool], ...]:
    """Open items whose time has come (told or not yet)."""
    return (
        OutboxMessage.channel == Channel.STAFF,
        or_(
            OutboxMessage.status == OutboxStatus.AWAITING_STAFF,
            (OutboxMessage.status == OutboxStatus.PENDING) & (OutboxMessage.not_before <= now),
        ),
    )


async def due_in_chats(
    *, session: AsyncSession, chats: Sequence[str], now: datetime
) -> list[OutboxMessage]:
    """The open, due items of these chats, oldest first."""
    if not chats:
        return []
    rows = await session.scalars(
        select(OutboxMessage)
        .where(*is_due(now), OutboxMessage.target.in_(list(chats)))
        .order_by(OutboxMessage.not_before, OutboxMessage.id)
    )
    return list(rows)


async def close(
    *, session: AsyncSession, row_id: int, now: datetime, status: OutboxStatus
) -> bool:
    """Posted (`sent`) or `skipped`, once: False when the row is no open staff item (already
    closed by an earlier tap, another instance, or not a 群SOP item at all)."""
    values: dict[str, object] = {"status": status, "updated_at": now}
    if status == OutboxStatus.SENT:
        values["sent_at"] = now
    closed = await session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.id == row_id,
            OutboxMessage.channel == Channel.STAFF,
            OutboxMessage.status.in_(OPEN),
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    return bool(closed.rowcount)  # type: ignore[attr-defined]
