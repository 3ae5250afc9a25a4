"""The calendar: what will be sent, to whom, when — the dry run before a camp."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from app.capability import NO_EXTENSIONS, Extensions
from schedules.models import Firing, FiringStatus, Schedule
from schedules.planner import schedule_timezone
from schedules.targets import Target, resolve


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    firing_id: int
    schedule_id: int
    script_key: str
    cohort_id: int | None
    due_at: datetime  # UTC
    local_time: str  # on the camp's clock, e.g. "2026-03-03 08:00 (Asia/Shanghai)"
    targets: tuple[str, ...]  # channel:target labels


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
        entries.append(
            CalendarEntry(
                firing_id=firing.id,
                schedule_id=schedule.id,
                script_key=schedule.script_key,
                cohort_id=schedule.cohort_id,
                due_at=firing.due_at,
                local_time=f"{local:%Y-%m-%d %H:%M} ({tz.key})",
                targets=tuple(t.label for t in targets),
            )
        )
    return entries
