"""Telling staff about their 群SOP items: one app message per staff member for the items due
together, one reminder, and an escalation to the cohort's operators when an item is overdue.

Runs as the capability's loop (`bots.sop.jobs`) wherever the sender runs; every message is an
outbox row (`app_message`, the member's own 30/min limit) keyed by the staff member and the
first item it names, so two instances running the same round write it once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import outbox
from app.admin.models import Cohort, CohortGroup
from app.channels.reach import Channel
from app.channels.staff import take_due
from app.models import Group, Member, OutboxMessage
from bots.checkin.service.place import latest_cohort_id
from bots.sop.models import SopSettings, SopTask
from bots.sop.settings import overdue_at, timing_of

DEFAULT_TZ = "Asia/Shanghai"  # an item of no cohort: the camps' usual clock
MAX_LISTED = 10  # an app message's text is at most 2048 bytes
HOW_TO = "请在企业微信打开对应的群或聊天，点右上角聊天工具栏里的「训练营助手」，一键发送。"


async def chat_names(session: AsyncSession, tasks: Iterable[SopTask]) -> dict[str, str]:
    """What staff call each chat: the group's name, or the student's name and （私聊）."""
    groups = {t.chat for t in tasks if t.chat_kind == "group"}
    singles = {t.chat for t in tasks if t.chat_kind == "single"}
    names: dict[str, str] = {}
    if groups:
        rows = await session.execute(
            select(Group.chat_id, Group.name).where(Group.chat_id.in_(groups))
        )
        names.update({chat: name or chat for chat, name in rows if chat})
    if singles:
        rows = await session.execute(
            select(Member.external_userid, Member.name).where(Member.external_userid.in_(singles))
        )
        names.update({ext: f"{name or '学员'}（私聊）" for ext, name in rows if ext})
    return names


async def staff_names(session: AsyncSession, userids: Iterable[str]) -> dict[str, str]:
    wanted = set(userids)
    if not wanted:
        return {}
    rows = await session.execute(
        select(Member.userid, Member.name).where(Member.userid.in_(wanted))
    )
    return {userid: name or userid for userid, name in rows if userid}


def _line(task: SopTask, names: dict[str, str], tz_of: dict[int, str]) -> str:
    """One item as staff read it: its chat, its title and its time on the cohort's clock."""
    at = task.due_at.astimezone(_zone(tz_of.get(task.cohort_id or 0)))
    return f"{names.get(task.chat, task.chat)} · {task.title}（{at:%H:%M}）"


def listing(tasks: Sequence[SopTask], names: dict[str, str], tz_of: dict[int, str]) -> str:
    lines = [f"{n}. {_line(task, names, tz_of)}" for n, task in enumerate(tasks[:MAX_LISTED], 1)]
    if len(tasks) > MAX_LISTED:
        lines.append(f"……另有 {len(tasks) - MAX_LISTED} 条")
    return "\n".join(lines)


def _zone(tz: str | None) -> ZoneInfo:
    return ZoneInfo(tz or DEFAULT_TZ)


async def cohorts_of(session: AsyncSession, rows: Sequence[OutboxMessage]) -> dict[str, int]:
    """Each row's cohort by its chat: a group's (`CohortGroup`), or the student's latest (as
    `bots.checkin` picks it); a chat of no cohort is absent."""
    groups = {r.target for r in rows if r.payload.get("chat") == "group"}
    singles = {r.target for r in rows if r.payload.get("chat") != "group"}
    found: dict[str, int] = {}
    if groups:
        in_groups = await session.execute(
            select(Group.chat_id, CohortGroup.cohort_id)
            .select_from(CohortGroup)
            .join(Group, Group.id == CohortGroup.group_id)
            .where(Group.chat_id.in_(groups))
        )
        found.update({str(chat): int(cohort) for chat, cohort in in_groups})
    if singles:
        latest = await session.execute(
            select(Member.external_userid, latest_cohort_id(Member.id)).where(
                Member.external_userid.in_(singles)
            )
        )
        found.update({str(ext): int(cohort) for ext, cohort in latest if cohort is not None})
    return found


async def tasks_for(
    session: AsyncSession, rows: Sequence[OutboxMessage], now: datetime
) -> list[SopTask]:
    """The rows' SopTasks (in their order), those missing written now (told, posted or
    skipped): one read of the existing ones, one per kind of chat for the cohorts, one flush."""
    if not rows:
        return []
    existing = await session.scalars(
        select(SopTask).where(SopTask.outbox_id.in_([r.id for r in rows]))
    )
    tasks = {t.outbox_id: t for t in existing}
    missing = [r for r in rows if r.id not in tasks]
    if missing:
        cohorts = await cohorts_of(session, missing)
        new = [_new_task(row, cohorts.get(row.target), now) for row in missing]
        session.add_all(new)
        await session.flush()
        tasks.update({t.outbox_id: t for t in new})
    return [tasks[r.id] for r in rows]


async def task_for(session: AsyncSession, row: OutboxMessage, now: datetime) -> SopTask:
    """The row's SopTask, written the first time it is needed (told, posted or skipped)."""
    [task] = await tasks_for(session, [row], now)
    return task


def _new_task(row: OutboxMessage, cohort_id: int | None, now: datetime) -> SopTask:
    return SopTask(
        outbox_id=row.id,
        staff_userid=str(row.payload.get("sender") or ""),
        chat_kind="single" if row.payload.get("chat") == "single" else "group",
        chat=row.target,
        cohort_id=cohort_id,
        title=str(row.payload.get("title") or "群SOP")[:200],
        due_at=row.not_before,
        notified_at=now,
    )


async def _tell(session: AsyncSession, *, key: str, userid: str, text: str, now: datetime) -> None:
    await outbox.enqueue(
        session=session,
        key=key,
        channel=Channel.APP_MESSAGE,
        target=userid,
        payload={"message": {"msgtype": "text", "content": text}, "sender": ""},
        now=now,
    )


def by_staff(tasks: Iterable[SopTask]) -> dict[str, list[SopTask]]:
    grouped: dict[str, list[SopTask]] = defaultdict(list)
    for task in tasks:
        grouped[task.staff_userid].append(task)
    return grouped


async def _zones(session: AsyncSession, tasks: Iterable[SopTask]) -> dict[int, str]:
    ids = {t.cohort_id for t in tasks if t.cohort_id}
    if not ids:
        return {}
    rows = await session.execute(select(Cohort.id, Cohort.timezone).where(Cohort.id.in_(ids)))
    return {int(cohort_id): str(tz) for cohort_id, tz in rows}


async def notify_due(*, session: AsyncSession, now: datetime) -> int:
    """Tell each staff member, in one message, about their items that fell due."""
    rows = await take_due(session=session, now=now)
    tasks = await tasks_for(session, rows, now)
    await _send_lists(
        session, tasks, now=now, head="【群SOP】有 {n} 条内容待你发送：", kind="notice"
    )
    return len(tasks)


async def _send_lists(
    session: AsyncSession, tasks: Sequence[SopTask], *, now: datetime, head: str, kind: str
) -> None:
    if not tasks:
        return
    names = await chat_names(session, tasks)
    zones = await _zones(session, tasks)
    for staff, mine in by_staff(tasks).items():
        if not staff:
            continue
        text = f"{head.format(n=len(mine))}\n{listing(mine, names, zones)}\n{HOW_TO}"
        key = f"sop_{kind}:{staff}:{min(t.outbox_id for t in mine)}"
        await _tell(session, key=key, userid=staff, text=text, now=now)


async def _open_tasks(session: AsyncSession, *, column: object) -> list[SopTask]:
    rows = await session.scalars(
        select(SopTask)
        .where(SopTask.outcome.is_(None), column.is_(None))  # type: ignore[attr-defined]
        .order_by(SopTask.due_at, SopTask.outbox_id)
        .with_for_update(skip_locked=True)
    )
    return list(rows)


async def settings_of(
    session: AsyncSession, cohort_ids: Iterable[int | None]
) -> dict[int, SopSettings]:
    """The cohorts' own timing rows (a cohort without one keeps the defaults)."""
    ids = {c for c in cohort_ids if c}
    if not ids:
        return {}
    rows = await session.scalars(select(SopSettings).where(SopSettings.cohort_id.in_(ids)))
    return {s.cohort_id: s for s in rows}


async def remind_late(*, session: AsyncSession, now: datetime) -> int:
    """One reminder per staff member for their items open past the cohort's remind time."""
    tasks = await _open_tasks(session, column=SopTask.reminded_at)
    settings = await settings_of(session, (t.cohort_id for t in tasks))
    late = [
        t
        for t in tasks
        if now >= t.due_at + timedelta(minutes=timing_of(settings.get(t.cohort_id or 0)).remind)
    ]
    for task in late:
        task.reminded_at = now
    await _send_lists(
        session, late, now=now, head="【群SOP提醒】还有 {n} 条没有发送：", kind="remind"
    )
    return len(late)


async def escalate_overdue(*, session: AsyncSession, now: datetime) -> int:
    """Items open past the cohort's escalation time: marked, and the cohort's operators told
    (else the group's owner, when an assistant runs it); the admin API lists them either way."""
    tasks = await _open_tasks(session, column=SopTask.escalated_at)
    settings = await settings_of(session, (t.cohort_id for t in tasks))
    timings = {t.outbox_id: timing_of(settings.get(t.cohort_id or 0)) for t in tasks}
    due = [t for t in tasks if now >= overdue_at(t.due_at, timings[t.outbox_id])]
    if not due:
        return 0
    owners = await _owners(session, (t for t in due if not timings[t.outbox_id].operators))
    told: dict[str, list[SopTask]] = defaultdict(list)
    for task in due:
        task.escalated_at = now
        operators = timings[task.outbox_id].operators or _owner(task, owners)
        for operator in operators:
            told[operator].append(task)
    names = await chat_names(session, due)
    staff = await staff_names(session, (t.staff_userid for t in due))
    zones = await _zones(session, due)
    for operator, mine in told.items():
        lines = [
            f"{staff.get(t.staff_userid, t.staff_userid)}：{_line(t, names, zones)}"
            for t in mine[:MAX_LISTED]
        ]
        text = f"【群SOP超时】{len(mine)} 条内容超时未发送：\n" + "\n".join(lines)
        key = f"sop_escalate:{operator}:{min(t.outbox_id for t in mine)}"
        await _tell(session, key=key, userid=operator, text=text, now=now)
    return len(due)


async def _owners(session: AsyncSession, tasks: Iterable[SopTask]) -> dict[str, str]:
    """The owners of these tasks' groups, by chat id (one query)."""
    chats = {t.chat for t in tasks if t.chat_kind == "group"}
    if not chats:
        return {}
    rows = await session.execute(
        select(Group.chat_id, Group.owner_userid).where(Group.chat_id.in_(chats))
    )
    return {str(chat): owner for chat, owner in rows if owner}


def _owner(task: SopTask, owners: dict[str, str]) -> tuple[str, ...]:
    if task.chat_kind != "group":
        return ()
    owner = owners.get(task.chat)
    return (owner,) if owner and owner != task.staff_userid else ()
