"""A day's pushes, as the 今日 page shows them: each firing due that day, and for one that
fired, each message it wrote — where it went, by which channel, and its state now (planned,
pending, sent, awaiting the owner's confirmation, failed with the Chinese hint).

A handful of queries whatever the number of firings: the firings with their schedules, the
outbox rows their keys name (`schedule:{id}:{target}:{due}`, `schedules.sends`), the mass
sends' results, and the cohorts' groups for what is still planned. The states are the
outbox's own codes plus `awaiting_confirmation`; a code added later passes through as it is.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.models import Cohort, CohortGroup
from app.admin.outbox.service import hint_for, target_names
from app.channels.reach import Channel
from app.models import (
    Group,
    GroupStatus,
    MassSendResult,
    MassSendStatus,
    OutboxMessage,
    OutboxStatus,
)
from schedules.models import Firing, FiringStatus, Schedule
from schedules.sends import due_label
from scripts_library.models import Script

_WAITING = (OutboxStatus.PENDING, OutboxStatus.CLAIMED, OutboxStatus.SENDING)


@dataclass(frozen=True, slots=True)
class Push:
    due_at: datetime  # UTC
    local_time: str  # HH:MM on the cohort's clock
    cohort_id: int | None
    schedule_id: int
    script_key: str
    script_title: str
    target_spec: dict[str, object]  # the schedule's target (what a planned push goes to)
    target: str  # who a sent message went to, for people ("" while planned)
    channel: str  # an outbox channel code ("robot", "customer_group", …), or "" (not yet)
    state: str  # planned | pending | sent | awaiting_confirmation | dead | cancelled | …
    hint: str | None = None  # what to do about a failure, in Chinese
    outbox_id: int | None = None


def message_state(row: OutboxMessage, result: MassSendResult | None) -> str:
    """The row's state as people read it: a mass send is only sent once it is confirmed."""
    if row.status in _WAITING:
        return OutboxStatus.PENDING
    if row.status != OutboxStatus.SENT or row.channel not in (
        Channel.CUSTOMER_GROUP,
        Channel.CUSTOMER_SINGLE,
    ):
        return row.status
    if result is None or result.status == MassSendStatus.AWAITING:
        return "awaiting_confirmation"
    return "failed" if result.status == MassSendStatus.FAILED else OutboxStatus.SENT


async def pushes_on(
    *,
    session: AsyncSession,
    day: date,
    default_tz: str,
    cohort_ids: Collection[int] | None = None,
) -> list[Push]:
    """Every push due on `day` (each cohort's own calendar day), earliest first;
    `cohort_ids` keeps those cohorts' schedules only."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=ZoneInfo("UTC"))
    query = (
        select(Firing, Schedule, Cohort.timezone, Script.title)
        .join(Schedule, Schedule.id == Firing.schedule_id)
        .outerjoin(Cohort, Cohort.id == Schedule.cohort_id)
        .outerjoin(Script, Script.key == Schedule.script_key)
        # Wide enough for any zone; each firing is then kept if its local date is `day`.
        .where(
            Firing.due_at >= start - timedelta(hours=15),
            Firing.due_at < start + timedelta(hours=39),
        )
        .order_by(Firing.due_at, Firing.id)
    )
    if cohort_ids is not None:
        query = query.where(Schedule.cohort_id.in_(cohort_ids))
    rows = [
        (firing, schedule, zone, title)
        for firing, schedule, tz, title in (await session.execute(query)).all()
        if firing.due_at.astimezone(zone := ZoneInfo(tz or default_tz)).date() == day
    ]
    sent = await _messages(
        session, [(f, s) for f, s, _, _ in rows if f.status == FiringStatus.FIRED]
    )
    planned = await _planned_channels(session, [s for _, s, _, _ in rows])
    names = await target_names(
        session=session, targets=[m.target for found in sent.values() for m, _ in found]
    )
    pushes: list[Push] = []
    for firing, schedule, zone, title in rows:
        base = Push(
            due_at=firing.due_at,
            local_time=f"{firing.due_at.astimezone(zone):%H:%M}",
            cohort_id=schedule.cohort_id,
            schedule_id=schedule.id,
            script_key=schedule.script_key,
            script_title=title or schedule.script_key,
            target_spec=schedule.target,
            target="",
            channel=planned.get(schedule.id, ""),
            state=firing.status,
            hint=firing.note,
        )
        pushes += _each_message(base, sent.get(firing.id, []), names, firing)
    return pushes


def _each_message(
    base: Push,
    found: list[tuple[OutboxMessage, MassSendResult | None]],
    names: dict[str, str],
    firing: Firing,
) -> list[Push]:
    if not found:
        if firing.status == FiringStatus.FIRED:  # a job's rows (keys of its own), or none
            note = f"已发出 {firing.enqueued} 条" if firing.enqueued else "没有要发送的对象"
            return [_replace(base, hint=firing.note or note)]
        return [base]
    return [
        _replace(
            base,
            target=names.get(row.target, row.target),
            channel=row.channel,
            state=message_state(row, result),
            hint=hint_for(row),
            outbox_id=row.id,
        )
        for row, result in found
    ]


def _replace(push: Push, **changes: object) -> Push:
    return replace(push, **changes)  # type: ignore[arg-type]


async def _messages(
    session: AsyncSession, fired: list[tuple[Firing, Schedule]]
) -> dict[int, list[tuple[OutboxMessage, MassSendResult | None]]]:
    """The outbox rows each fired firing wrote, with their mass sends' results."""
    if not fired:
        return {}
    wanted = {(s.id, due_label(f.due_at)): f.id for f, s in fired}
    # A firing writes its rows when it fires (within the misfire grace of its time): a day's
    # margin either side.
    earliest = min(f.due_at for f, _ in fired) - timedelta(days=1)
    latest = max(f.fired_at or f.due_at for f, _ in fired) + timedelta(days=1)
    sqlite = session.get_bind().dialect.name == "sqlite"
    prefixes = [f"schedule:{sid}:" for sid in sorted({s.id for _, s in fired})]
    rows = (
        await session.scalars(
            select(OutboxMessage).where(
                or_(*(_key_starts(prefix, sqlite=sqlite) for prefix in prefixes)),
                OutboxMessage.created_at >= earliest,
                OutboxMessage.created_at <= latest,
            )
        )
    ).all()
    found: dict[int, list[OutboxMessage]] = defaultdict(list)
    for row in rows:
        parts = row.key.split(":")
        firing_id = wanted.get((int(parts[1]), parts[-1])) if parts[1].isdigit() else None
        if firing_id is not None:
            found[firing_id].append(row)
    ids = [row.id for group in found.values() for row in group]
    results = {
        r.outbox_id: r
        for r in (
            await session.scalars(select(MassSendResult).where(MassSendResult.outbox_id.in_(ids)))
        ).all()
    }
    return {f: [(row, results.get(row.id)) for row in group] for f, group in found.items()}


def _key_starts(prefix: str, *, sqlite: bool) -> ColumnElement[bool]:
    """Outbox keys starting with `prefix` (which ends in ':'), as the key's index serves it:
    on SQLite a range (its LIKE ignores case, so no index; keys compare bytewise there, and
    ';' follows ':'); elsewhere LIKE, whose prefix is right under any collation."""
    if sqlite:
        return and_(OutboxMessage.key >= prefix, OutboxMessage.key < prefix[:-1] + ";")
    return OutboxMessage.key.startswith(prefix)


async def _planned_channels(session: AsyncSession, schedules: list[Schedule]) -> dict[int, str]:
    """For each schedule, the channel(s) its targets would be sent by, as codes."""
    cohort_ids = {s.cohort_id for s in schedules if s.cohort_id is not None}
    group_ids = {
        i
        for s in schedules
        if s.target.get("type") == "groups"
        for i in s.target.get("group_ids") or []
    }
    by_cohort: dict[int, set[str]] = defaultdict(set)
    by_group: dict[int, str] = {}
    if cohort_ids or group_ids:
        rows = await session.execute(
            select(Group.id, Group.channel, CohortGroup.cohort_id)
            .outerjoin(CohortGroup, CohortGroup.group_id == Group.id)
            .where(Group.status == GroupStatus.ACTIVE)
            .where((CohortGroup.cohort_id.in_(cohort_ids)) | (Group.id.in_(group_ids)))
        )
        for group_id, channel, cohort_id in rows:
            code = _group_channel(channel)
            by_group[group_id] = code
            if cohort_id is not None:
                by_cohort[cohort_id].add(code)
    channels: dict[int, str] = {}
    for s in schedules:
        kind = s.target.get("type")
        if kind == "cohort_groups" and s.cohort_id is not None:
            codes = by_cohort.get(s.cohort_id, set())
        elif kind == "groups":
            codes = {by_group[i] for i in s.target.get("group_ids") or [] if i in by_group}
        elif kind == "staff":
            codes = {Channel.APP_MESSAGE.value}
        else:
            codes = set()  # members: each by the channel that reaches them
        channels[s.id] = "、".join(sorted(codes))
    return channels


def _group_channel(channel: str) -> str:
    return {"robot": Channel.ROBOT, "appchat": Channel.APPCHAT}.get(
        channel, Channel.CUSTOMER_GROUP
    ).value
