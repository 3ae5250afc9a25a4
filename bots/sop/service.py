"""群SOP: items staff post from the chat toolbar, their outcome, and the figures.

Public functions (keyword-only; they flush, the caller commits) for the sidebar, the admin
API and other capabilities (the stats read `completion_by_staff`). An item is an outbox row
on the `staff` channel (`app.channels.staff`); its bookkeeping is a `SopTask`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.errors import Conflict, NotFound
from app.channels import staff
from app.channels.messages import OutMessage
from app.channels.reach import Channel
from app.clock import Clock
from app.console.labels import label
from app.models import OutboxMessage, OutboxStatus
from bots.sop import notices
from bots.sop.models import SopOutcome, SopSettings, SopTask
from bots.sop.settings import Timing, overdue_at, timing_of

MY_ITEMS_LIMIT = 200  # the sidebar's list outside a chat: the oldest open items first


@dataclass(frozen=True, slots=True)
class Item:
    """One 群SOP item as staff see it."""

    id: int
    chat: str
    chat_kind: str
    title: str
    due_at: datetime
    status: str
    message: OutMessage  # its text and articles; the image is not decoded here: `has_image`
    has_image: bool = False
    done_at: datetime | None = None
    done_by: str | None = None
    overdue: bool = False  # open past its cohort's escalation time (`settings.overdue_at`)


def item_of(row: OutboxMessage, task: SopTask | None = None, *, overdue: bool = False) -> Item:
    """The item as listed: its image (base64 in the payload, up to 2 MB) is left encoded, as
    a list only says whether there is one (`image_of` decodes it for the upload)."""
    data: dict[str, Any] = row.payload["message"]  # type: ignore[assignment]
    return Item(
        id=row.id,
        chat=row.target,
        chat_kind=str(row.payload.get("chat") or "group"),
        title=str(row.payload.get("title") or "群SOP"),
        due_at=row.not_before,
        status=row.status,
        message=OutMessage.from_json({**data, "image": ""}),
        has_image=bool(data.get("image")),
        done_at=task.done_at if task else None,
        done_by=task.done_by if task else None,
        overdue=overdue,
    )


def image_of(row: OutboxMessage) -> bytes:
    """The item's image, decoded (empty when it has none)."""
    return OutMessage.from_json(row.payload["message"]).image  # type: ignore[arg-type]


async def due_items(*, session: AsyncSession, chats: Sequence[str], now: datetime) -> list[Item]:
    """The open items whose time has come in these chats (due and overdue), oldest first."""
    rows = await staff.due_in_chats(session=session, chats=chats, now=now)
    return await _listed(session, rows, now)


async def my_items(
    *, session: AsyncSession, staff_userid: str, now: datetime, limit: int = MY_ITEMS_LIMIT
) -> list[Item]:
    """A staff member's due and overdue items in every chat (the sidebar outside a chat),
    the oldest `limit` of them: filtered by sender in SQL, not by reading every open row."""
    rows = await session.scalars(
        select(OutboxMessage)
        .where(*staff.is_due(now), OutboxMessage.payload["sender"].as_string() == staff_userid)
        .order_by(OutboxMessage.not_before, OutboxMessage.id)
        .limit(limit)
    )
    return await _listed(session, list(rows), now)


async def _listed(
    session: AsyncSession, rows: Sequence[OutboxMessage], now: datetime
) -> list[Item]:
    """Open items as listed, each marked overdue as `notices.escalate_overdue` finds it: by
    its task's cohort once staff were told, else its chat's (a few queries for any number)."""
    if not rows:
        return []
    told = await session.execute(
        select(SopTask.outbox_id, SopTask.cohort_id).where(
            SopTask.outbox_id.in_([r.id for r in rows])
        )
    )
    cohorts: dict[int, int | None] = dict(told.all())
    by_chat = await notices.cohorts_of(session, [r for r in rows if r.id not in cohorts])
    for row in rows:
        cohorts.setdefault(row.id, by_chat.get(row.target))
    settings = await notices.settings_of(session, cohorts.values())
    return [
        item_of(
            row,
            overdue=now
            >= overdue_at(row.not_before, timing_of(settings.get(cohorts[row.id] or 0))),
        )
        for row in rows
    ]


async def get_item(*, session: AsyncSession, item_id: int) -> tuple[OutboxMessage, SopTask | None]:
    row = await session.get(OutboxMessage, item_id)
    if row is None or row.channel != Channel.STAFF:
        raise NotFound(f"群SOP 任务 {item_id} 不存在。")
    return row, await session.get(SopTask, item_id)


async def timing_for(*, session: AsyncSession, cohort_id: int | None) -> Timing:
    return timing_of(await session.get(SopSettings, cohort_id) if cohort_id else None)


# The console's words for the states (`app.console.labels`), but for one the sidebar has always
# said in full: "dead" is 发送失败 here (失败 in the console's lists).
_SIDEBAR_WORDS: dict[str, str] = {OutboxStatus.DEAD: "发送失败"}


def state_word(code: str) -> str:
    """What the sidebar calls an outbox row's or a firing's state."""
    return _SIDEBAR_WORDS.get(code) or label(code)


@dataclass(frozen=True, slots=True)
class Closed:
    item: Item
    recorded: bool  # False: it was already closed (a double tap records once)


async def _close(
    session: AsyncSession, item_id: int, *, by: str, now: datetime, status: OutboxStatus
) -> Closed:
    row, _ = await get_item(session=session, item_id=item_id)
    if row.status == OutboxStatus.PENDING and row.not_before > now:
        raise Conflict("这条群SOP还没到发送时间。")
    recorded = await staff.close(session=session, row_id=item_id, now=now, status=status)
    await session.refresh(row)
    task = await notices.task_for(session, row, now)
    if recorded:
        task.done_at, task.done_by = now, by
        if status == OutboxStatus.SKIPPED:
            task.outcome = SopOutcome.SKIPPED
        else:
            timing = await timing_for(session=session, cohort_id=task.cohort_id)
            on_time = now <= overdue_at(task.due_at, timing)
            task.outcome = SopOutcome.ON_TIME if on_time else SopOutcome.LATE
    elif row.status not in (status,):
        raise Conflict(f"这条群SOP已是「{state_word(row.status)}」。")
    await session.flush()
    return Closed(item_of(row, task), recorded)


async def record_sent(*, session: AsyncSession, item_id: int, by: str, now: datetime) -> Closed:
    """`by` posted the item from the chat toolbar: recorded once, on time or late."""
    return await _close(session, item_id, by=by, now=now, status=OutboxStatus.SENT)


async def skip(*, session: AsyncSession, item_id: int, by: str, now: datetime) -> Closed:
    """The item will not be posted (the group does not need it today)."""
    return await _close(session, item_id, by=by, now=now, status=OutboxStatus.SKIPPED)


@dataclass(frozen=True, slots=True)
class StaffCompletion:
    staff_userid: str
    on_time: int
    late: int
    skipped: int
    open: int  # told, not yet posted


async def completion_by_staff(*, session: AsyncSession, cohort_id: int) -> list[StaffCompletion]:
    """SOP completion per staff member (assistant or owner) in one cohort."""
    rows = await session.execute(
        select(SopTask.staff_userid, SopTask.outcome, func.count())
        .where(SopTask.cohort_id == cohort_id)
        .group_by(SopTask.staff_userid, SopTask.outcome)
    )
    counts: dict[str, dict[str | None, int]] = {}
    for userid, outcome, count in rows:
        counts.setdefault(userid, {})[outcome] = int(count)
    return [
        StaffCompletion(
            staff_userid=userid,
            on_time=by.get(SopOutcome.ON_TIME, 0),
            late=by.get(SopOutcome.LATE, 0),
            skipped=by.get(SopOutcome.SKIPPED, 0),
            open=by.get(None, 0),
        )
        for userid, by in sorted(counts.items())
    ]


async def list_tasks(
    *,
    session: AsyncSession,
    cohort_id: int | None,
    staff_userid: str | None,
    overdue: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[SopTask], int]:
    """Told items, newest first; `overdue=True`: the escalated ones still open."""
    statement = select(SopTask)
    if cohort_id is not None:
        statement = statement.where(SopTask.cohort_id == cohort_id)
    if staff_userid is not None:
        statement = statement.where(SopTask.staff_userid == staff_userid)
    if overdue is not None:
        escalated_open = SopTask.escalated_at.is_not(None) & SopTask.outcome.is_(None)
        statement = statement.where(escalated_open if overdue else ~escalated_open)
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(
        statement.order_by(SopTask.due_at.desc(), SopTask.outbox_id.desc())
        .limit(limit)
        .offset(offset)
    )
    return list(rows), int(total or 0)


async def open_tasks(
    *,
    session: AsyncSession,
    now: datetime,
    staff_userid: str | None = None,
    cohort_ids: Collection[int] | None = None,
    limit: int,
) -> tuple[list[SopTask], int]:
    """Told items not yet posted or skipped, oldest due first (the escalated ones are the
    oldest). With `staff_userid` and/or `cohort_ids`: that staff member's items or those of
    these cohorts (an assistant's view); with neither, all."""
    statement = select(SopTask).where(SopTask.outcome.is_(None), SopTask.due_at <= now)
    scope = []
    if staff_userid is not None:
        scope.append(SopTask.staff_userid == staff_userid)
    if cohort_ids is not None:
        scope.append(SopTask.cohort_id.in_(cohort_ids))
    if scope:
        statement = statement.where(or_(*scope))
    total = await session.scalar(select(func.count()).select_from(statement.subquery()))
    rows = await session.scalars(
        statement.order_by(SopTask.due_at, SopTask.outbox_id).limit(limit)
    )
    return list(rows), int(total or 0)


async def put_settings(
    *,
    session: AsyncSession,
    cohort_id: int,
    now: datetime,
    remind_after_minutes: int | None,
    escalate_after_minutes: int | None,
    operator_userids: Sequence[str] | None,
) -> Timing:
    row = await session.get(SopSettings, cohort_id, with_for_update=True)
    if row is None:
        current = Timing()
        row = SopSettings(
            cohort_id=cohort_id,
            remind_after_minutes=current.remind,
            escalate_after_minutes=current.escalate,
            operator_userids=[],
            updated_at=now,
        )
        session.add(row)
    if remind_after_minutes is not None:
        row.remind_after_minutes = remind_after_minutes
    if escalate_after_minutes is not None:
        row.escalate_after_minutes = escalate_after_minutes
    if operator_userids is not None:
        row.operator_userids = list(dict.fromkeys(operator_userids))
    row.updated_at = now
    await session.flush()
    return timing_of(row)


async def sop_round(*, sessions: async_sessionmaker[AsyncSession], clock: Clock) -> int:
    """Tell, remind, escalate: one pass (the loop's, and the demo's at each moment)."""
    async with sessions.begin() as session:
        told = await notices.notify_due(session=session, now=clock.now())
    async with sessions.begin() as session:
        reminded = await notices.remind_late(session=session, now=clock.now())
        escalated = await notices.escalate_overdue(session=session, now=clock.now())
    return told + reminded + escalated
