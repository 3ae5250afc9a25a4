"""The calendar: what will be sent, to whom, when, and by which channel — the dry run
before a camp. A customer group's push shows the decision routing would take at its time
(群发 while the script is worth a slot and the group's quota has one left, else 群SOP),
spending the projected quota in order, and what is left of it after."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app import quota
from app.capability import NO_EXTENSIONS, Extensions
from app.channels.reach import Channel
from app.channels.routing import CHANNEL_NAMES, GroupDelivery, Routing, delivery_of, is_personal
from schedules.models import Firing, FiringStatus, Schedule
from schedules.planner import schedule_timezone
from schedules.targets import Target, resolve
from scripts_library.models import Script
from scripts_library.render import variables_used


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    firing_id: int
    schedule_id: int
    script_key: str
    cohort_id: int | None
    due_at: datetime  # UTC
    local_time: str  # on the camp's clock, e.g. "2026-03-03 08:00 (Asia/Shanghai)"
    targets: tuple[str, ...]  # channel:target labels
    channels: tuple[str, ...] = ()  # per target: 群发 | 群SOP | 群机器人 | 应用消息 …
    quota_left: dict[str, int] | None = None  # customer groups: 群发 left after this firing


class QuotaPreview:
    """The customer groups' quota as the calendar spends it, window by window."""

    def __init__(self, session: AsyncSession, routing: Routing) -> None:
        self.session = session
        self.routing = routing
        self.used: dict[tuple[str, object], int] = {}

    async def load(self, targets: list[str], tz: str, at: datetime) -> None:
        """The used slots of those `targets` not yet known in `at`'s window: one query."""
        window = quota.window_of(self.routing.mode, quota.local_day(at, tz))
        missing = [t for t in dict.fromkeys(targets) if (t, window.start) not in self.used]
        if not missing:
            return
        found = await quota.quota_left(
            session=self.session, targets=missing, mode=self.routing.mode, tz=tz, now=at
        )
        for target in missing:
            self.used[(target, window.start)] = found[target].used

    async def take(self, target: str, tz: str, at: datetime, *, spend: bool) -> tuple[bool, int]:
        await self.load([target], tz, at)  # a no-op when `_decide` loaded the firing's groups
        window = quota.window_of(self.routing.mode, quota.local_day(at, tz))
        key = (target, window.start)
        taken = spend and self.used[key] < window.limit
        self.used[key] += taken
        return taken, window.limit - self.used[key]


async def _decide(
    preview: QuotaPreview, script: Script | None, targets: list[Target], tz: str, at: datetime
) -> tuple[tuple[str, ...], dict[str, int]]:
    delivery = delivery_of(script.group_delivery if script else None)
    personal = script is not None and is_personal(variables_used(script))
    channels, left = [], {}
    groups = [
        t.destination.target for t in targets if t.destination.channel == Channel.CUSTOMER_GROUP
    ]
    await preview.load(groups, tz, at)  # the firing's groups share a window: one query
    for target in targets:
        channel = target.destination.channel
        if channel == Channel.CUSTOMER_GROUP:
            worth = delivery == GroupDelivery.MASS_SEND
            sent, left[target.destination.target] = await preview.take(
                target.destination.target, tz, at, spend=worth
            )
            channels.append("群发" if sent else "群SOP")
        elif channel == Channel.CUSTOMER_SINGLE:
            alone = personal or delivery == GroupDelivery.SOP
            channels.append("群SOP（私聊）" if alone else "群发（合并）")
        else:
            channels.append(CHANNEL_NAMES.get(channel, str(channel)))
    return tuple(channels), left


async def calendar(
    *,
    session: AsyncSession,
    now: datetime,
    hours: float,
    default_tz: str,
    extensions: Extensions = NO_EXTENSIONS,
) -> list[CalendarEntry]:
    """What is planned within `hours`, to whom; `extensions`: the capabilities' member
    filters a target may name."""
    rows = (
        await session.execute(
            select(Firing, Schedule)
            .join(Schedule, Schedule.id == Firing.schedule_id)
            .where(
                Firing.status == FiringStatus.PLANNED,
                Firing.due_at >= now,
                Firing.due_at <= now + timedelta(hours=hours),
            )
            .order_by(Firing.due_at, Firing.id)
        )
    ).all()
    entries = []
    preview = QuotaPreview(session, extensions.routing)
    keys = {schedule.script_key for _, schedule in rows}
    scripts = {s.key: s for s in await session.scalars(select(Script).where(Script.key.in_(keys)))}
    # Firings of one target, cohort and member go to the same people: resolved once.
    resolved: dict[tuple[str, int | None, int | None], list[Target]] = {}
    for firing, schedule in rows:
        tz, _cohort = await schedule_timezone(
            session=session, schedule=schedule, default_tz=default_tz
        )
        whom = (json.dumps(schedule.target, sort_keys=True), schedule.cohort_id, firing.member_id)
        if whom not in resolved:
            resolved[whom] = await resolve(
                session=session,
                target=schedule.target,
                cohort_id=schedule.cohort_id,
                member_id=firing.member_id,
                now=now,
                filters=extensions.member_filters,
            )
        targets = resolved[whom]
        local = firing.due_at.astimezone(tz)
        channels, left = await _decide(
            preview, scripts.get(schedule.script_key), targets, tz.key, firing.due_at
        )
        entries.append(
            CalendarEntry(
                firing_id=firing.id,
                schedule_id=schedule.id,
                script_key=schedule.script_key,
                cohort_id=schedule.cohort_id,
                due_at=firing.due_at,
                local_time=f"{local:%Y-%m-%d %H:%M} ({tz.key})",
                targets=tuple(t.label for t in targets),
                channels=channels,
                quota_left=left or None,
            )
        )
    return entries
