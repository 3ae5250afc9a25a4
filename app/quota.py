"""The 群发 (mass send) quota: WeCom lets each customer group and each external contact
receive at most "days in the month" 群发 a month — or 7 a week, or 1 a day, as the corp
chose in 群发助手 (`WECOM_MASS_SEND_QUOTA`). A task over the quota is created but never
reaches its target (`get_groupmsg_send_result` status 3), so CampBot counts what it spends
and routes a push past the quota to 群SOP instead (`app.channels.routing`).

Accounting is a row per spent slot, `(target, mode, window_start, n)` unique, n in
1..limit: spending inserts the first free n with INSERT … ON CONFLICT DO NOTHING, so two
instances racing for the last slot of a window both try to insert it and exactly one row
lands — the other moves on to the next n, or finds none left. A slot is spent when the task
is created (the row is enqueued) under the task's outbox key (spending again under the same
key is a no-op), given back when WeCom says the target never got it (status 2, or a task
WeCom refused), and kept when WeCom says it was over quota (status 3): then the window is
marked full, because something CampBot does not see (a staff member's own 群发) spent it.
A merged 群发 to many students spends for them all at once (`spend_many`): a few statements.

Windows are the camp's calendar (the cohort's time zone): a month from its first day, a
week from Monday, a day.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, case, delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort, CohortGroup, CohortMember
from app.db import dialect_insert
from app.models import Group, MassSendQuotaSlot, Member
from app.settings import QuotaMode

__all__ = ["QuotaMode"]

FULL = "wecom_full"  # a slot WeCom said was spent (status 3), not a task of ours
TASK = "task"
# Targets per `spend_many` round: a row is 7 parameters, far below either backend's limit.
SPEND_CHUNK = 500


@dataclass(frozen=True, slots=True)
class Window:
    """One quota window on the camp's calendar: [start, end) and how many fit in it."""

    start: date
    end: date
    limit: int


def window_of(mode: QuotaMode, day: date) -> Window:
    if mode == QuotaMode.DAY_1:
        return Window(day, day + timedelta(days=1), 1)
    if mode == QuotaMode.WEEK_7:
        monday = day - timedelta(days=day.weekday())
        return Window(monday, monday + timedelta(days=7), 7)
    days = calendar.monthrange(day.year, day.month)[1]
    first = day.replace(day=1)
    return Window(first, first + timedelta(days=days), days)


def local_day(now: datetime, tz: str) -> date:
    return now.astimezone(ZoneInfo(tz)).date()


@dataclass(frozen=True, slots=True)
class QuotaLeft:
    target: str
    window: Window
    used: int
    full: bool  # WeCom said over quota in this window (status 3)

    @property
    def left(self) -> int:
        return max(self.window.limit - self.used, 0)


async def _holding(session: AsyncSession, targets: list[str], outbox_key: str) -> set[str]:
    """Those of `targets` holding a slot under the task `outbox_key`."""
    rows = await session.scalars(
        select(MassSendQuotaSlot.target).where(
            MassSendQuotaSlot.outbox_key == outbox_key, MassSendQuotaSlot.target.in_(targets)
        )
    )
    return set(rows)


async def spend(
    *,
    session: AsyncSession,
    target: str,
    mode: QuotaMode,
    tz: str,
    now: datetime,
    outbox_key: str,
) -> bool:
    """Take a slot of `target`'s current window for the task `outbox_key`; False when the
    window is full. Spending again under the same key answers True and takes nothing."""
    # One way to spend: `spend_many`'s, so the two can never disagree or lock differently.
    granted = await spend_many(
        session=session, targets={target: tz}, mode=mode, now=now, outbox_key=outbox_key
    )
    return target in granted


async def spend_many(
    *,
    session: AsyncSession,
    targets: Mapping[str, str],
    mode: QuotaMode,
    now: datetime,
    outbox_key: str,
) -> set[str]:
    """`spend` for each of `targets` (target → the time zone of its windows) under the task
    `outbox_key`, in a few statements for them all: the targets granted (or already holding)
    a slot. Sorted, so instances racing for the same targets wait on each other in one order."""
    wanted = sorted(targets)
    granted: set[str] = set()
    for start in range(0, len(wanted), SPEND_CHUNK):
        chunk = wanted[start : start + SPEND_CHUNK]
        windows = {t: window_of(mode, local_day(now, targets[t])) for t in chunk}
        granted |= await _spend_chunk(session, windows, mode=mode, now=now, outbox_key=outbox_key)
    return granted


async def _spend_chunk(
    session: AsyncSession,
    windows: dict[str, Window],
    *,
    mode: QuotaMode,
    now: datetime,
    outbox_key: str,
) -> set[str]:
    tried: dict[str, set[int]] = defaultdict(set)  # slots lost to another transaction
    while True:
        # A round that lost a slot is undone whole and redone: keeping its winners while
        # retrying lower targets would take row locks out of order (a deadlock on PostgreSQL).
        savepoint = await session.begin_nested()
        holding = await _holding(session, list(windows), outbox_key)
        rest = [t for t in windows if t not in holding]
        taken = await _taken_many(session, {t: windows[t] for t in rest}, mode)
        offers = {
            t: n
            for t in rest
            if (n := _first_free(windows[t].limit, taken[t] | tried[t])) is not None
        }
        won = await _insert_many(session, offers, windows, mode=mode, now=now, key=outbox_key)
        lost = {t: n for t, n in offers.items() if t not in won}
        if not lost:
            await savepoint.commit()
            return holding | won
        await savepoint.rollback()
        for t, n in lost.items():
            tried[t].add(n)


def _first_free(limit: int, taken: set[int]) -> int | None:
    return next((n for n in range(1, limit + 1) if n not in taken), None)


async def _taken_many(
    session: AsyncSession, windows: dict[str, Window], mode: QuotaMode
) -> defaultdict[str, set[int]]:
    taken: defaultdict[str, set[int]] = defaultdict(set)
    if not windows:
        return taken
    rows = await session.execute(
        select(
            MassSendQuotaSlot.target, MassSendQuotaSlot.window_start, MassSendQuotaSlot.n
        ).where(
            MassSendQuotaSlot.target.in_(list(windows)),
            MassSendQuotaSlot.mode == mode,
            MassSendQuotaSlot.window_start.in_({w.start for w in windows.values()}),
        )
    )
    for target, start, n in rows:
        if windows[target].start == start:
            taken[target].add(n)
    return taken


async def _insert_many(
    session: AsyncSession,
    offers: dict[str, int],
    windows: dict[str, Window],
    *,
    mode: QuotaMode,
    now: datetime,
    key: str,
) -> set[str]:
    """Insert each offered slot unless taken meanwhile: the targets whose slot went in."""
    slots = [
        _slot(t, windows[t], n, mode=mode, now=now, key=key, source=TASK)
        for t, n in sorted(offers.items())
    ]
    return set(await _insert_slots(session, slots))


def _slot(
    target: str,
    window: Window,
    n: int,
    *,
    mode: QuotaMode,
    now: datetime,
    key: str | None,
    source: str,
) -> dict[str, object]:
    return {
        "target": target,
        "mode": mode,
        "window_start": window.start,
        "n": n,
        "outbox_key": key,
        "source": source,
        "spent_at": now,
    }


async def _insert_slots(session: AsyncSession, slots: list[dict[str, object]]) -> list[str]:
    """Insert the slots in one statement, skipping each taken meanwhile (either unique key:
    the slot, or the task's slot for its target); the targets of those inserted."""
    if not slots:
        return []
    insert = dialect_insert(session)
    inserted = await session.execute(
        insert(MassSendQuotaSlot)
        .values(slots)
        .on_conflict_do_nothing()
        .returning(MassSendQuotaSlot.target)
    )
    return list(inserted.scalars())


async def quota_left(
    *,
    session: AsyncSession,
    targets: Iterable[str],
    mode: QuotaMode,
    tz: str,
    now: datetime,
) -> dict[str, QuotaLeft]:
    """Each target's current window: used slots and what is left."""
    wanted = list(dict.fromkeys(targets))
    window = window_of(mode, local_day(now, tz))
    if not wanted:
        return {}
    rows = await session.execute(
        select(
            MassSendQuotaSlot.target,
            func.count(),
            func.max(case((MassSendQuotaSlot.source == FULL, 1), else_=0)),
        )
        .where(
            MassSendQuotaSlot.target.in_(wanted),
            MassSendQuotaSlot.mode == mode,
            MassSendQuotaSlot.window_start == window.start,
        )
        .group_by(MassSendQuotaSlot.target)
    )
    found = {target: (int(used), bool(full)) for target, used, full in rows}
    return {target: QuotaLeft(target, window, *found.get(target, (0, False))) for target in wanted}


async def release(
    *, session: AsyncSession, outbox_key: str, targets: Collection[str] | None = None
) -> int:
    """Give back what the task `outbox_key` spent (for `targets`, or all its targets): WeCom
    says it never reached them. Slots WeCom marked full stay."""
    spent = MassSendQuotaSlot.outbox_key == outbox_key
    if targets is not None:
        spent &= MassSendQuotaSlot.target.in_(list(targets))
    return await _release(session, spent)


async def release_tasks(*, session: AsyncSession, outbox_keys: Select[str]) -> int:
    """`release` for every task `outbox_keys` selects, in one statement."""
    return await _release(session, MassSendQuotaSlot.outbox_key.in_(outbox_keys))


async def _release(session: AsyncSession, spent: ColumnElement[bool]) -> int:
    statement = delete(MassSendQuotaSlot).where(spent, MassSendQuotaSlot.source == TASK)
    result = await session.execute(statement.execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def mark_full(
    *, session: AsyncSession, target: str, mode: QuotaMode, tz: str, now: datetime
) -> int:
    """WeCom answered over quota (status 3) for `target`: its window is full, whatever
    CampBot counted. How many slots that took."""
    window = window_of(mode, local_day(now, tz))
    taken = (await _taken_many(session, {target: window}, mode))[target]
    free = [n for n in range(1, window.limit + 1) if n not in taken]
    slots = [_slot(target, window, n, mode=mode, now=now, key=None, source=FULL) for n in free]
    return len(await _insert_slots(session, slots))


async def group_timezones(*, session: AsyncSession, chat_ids: Sequence[str]) -> dict[str, str]:
    """Chat id → its customer group's cohort's time zone, for the groups that have one: one
    query for them all."""
    if not chat_ids:
        return {}
    rows = await session.execute(
        select(Group.chat_id, Cohort.timezone)
        .join(CohortGroup, CohortGroup.group_id == Group.id)
        .join(Cohort, Cohort.id == CohortGroup.cohort_id)
        .where(Group.chat_id.in_(chat_ids))
    )
    zones: dict[str, str] = {}
    for chat_id, tz in rows:
        if chat_id and tz:
            zones.setdefault(chat_id, str(tz))
    return zones


async def camp_timezone(*, session: AsyncSession, target: str, default_tz: str) -> str:
    """The calendar a target's quota windows follow: its cohort's time zone (a customer
    group's cohort, or an external student's latest), else the default."""
    zones = await camp_timezones(session=session, targets=[target], default_tz=default_tz)
    return zones[target]


async def camp_timezones(
    *, session: AsyncSession, targets: Sequence[str], default_tz: str
) -> dict[str, str]:
    """`camp_timezone` of each target, in two queries for them all."""
    zones = await group_timezones(session=session, chat_ids=targets)
    students = [t for t in dict.fromkeys(targets) if t not in zones]
    latest: dict[str, str | None] = {}
    if students:
        rows = await session.execute(
            select(Member.external_userid, Cohort.timezone)
            .join(CohortMember, CohortMember.member_id == Member.id)
            .join(Cohort, Cohort.id == CohortMember.cohort_id)
            .where(Member.external_userid.in_(students))
            .order_by(CohortMember.joined_at.desc())
        )
        for external, tz in rows:
            latest.setdefault(str(external), tz)  # the first row is the latest cohort
    return zones | {t: latest.get(t) or default_tz for t in students}
