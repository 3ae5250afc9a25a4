"""Firing: due firings render their script per target and enqueue outbox rows.

Each row's key is `schedule:{id}:{target}:{due_at}`, so a firing run twice (two
scheduler processes, a restart mid-firing) enqueues nothing twice. A firing found
longer than the misfire grace after its time is recorded `missed`, not sent late.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import Cohort
from app.channels.routes import enqueue_message
from app.clock import Clock
from schedules.models import Firing, FiringStatus, Schedule
from schedules.planner import schedule_timezone
from schedules.targets import Target, resolve
from scripts_library.models import Script
from scripts_library.render import render
from scripts_library.variables import RenderContext, zh_date, zh_weekday

logger = logging.getLogger(__name__)

MISFIRE_GRACE = timedelta(minutes=10)
BATCH = 200


@dataclass(slots=True)
class FireReport:
    fired: int = 0
    missed: int = 0
    failed: int = 0
    enqueued: int = 0


def outbox_key(schedule_id: int, target: Target, due_at: datetime) -> str:
    return f"schedule:{schedule_id}:{target.label}:{due_at.strftime('%Y%m%dT%H%M%SZ')}"


def context_for(*, cohort: Cohort | None, target: Target, local_now: datetime) -> RenderContext:
    """The variables a scheduled script sees for one target."""
    fields: dict[str, object] = {
        "date": zh_date(local_now.date()),
        "weekday": zh_weekday(local_now.date()),
    }
    if cohort is not None:
        fields.update(
            cohort_name=cohort.name,
            camp_name=cohort.camp,
            total_days=cohort.days,
            day=(local_now.date() - cohort.start_date).days,
        )
    if target.group is not None:
        fields["group_name"] = target.group.name or ""
    if target.member is not None:
        fields["student_name"] = target.member.name or "同学"
    return RenderContext(**fields)  # type: ignore[arg-type]


async def _claim(session: AsyncSession, firing_id: int, now: datetime) -> bool:
    claimed = await session.execute(
        update(Firing)
        .where(Firing.id == firing_id, Firing.status == FiringStatus.PLANNED)
        .values(status=FiringStatus.FIRED, fired_at=now)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


async def fire(
    *,
    session: AsyncSession,
    firing: Firing,
    now: datetime,
    default_tz: str,
    grace: timedelta = MISFIRE_GRACE,
) -> str:
    """Fire one firing in the caller's transaction; its resulting status."""
    if not await _claim(session, firing.id, now):
        return "taken"  # another scheduler fired it
    if now - firing.due_at > grace:
        firing.status, firing.note = (
            FiringStatus.MISSED,
            f"错过发送时间（晚了 {now - firing.due_at}）",
        )
        return FiringStatus.MISSED
    schedule = await session.get(Schedule, firing.schedule_id)
    assert schedule is not None  # the firing's foreign key
    script = (
        await session.execute(select(Script).where(Script.key == schedule.script_key))
    ).scalar_one_or_none()
    if script is None:
        firing.status, firing.note = FiringStatus.MISSED, f"话术不存在：{schedule.script_key}"
        return FiringStatus.MISSED
    tz, cohort = await schedule_timezone(session=session, schedule=schedule, default_tz=default_tz)
    targets = await resolve(
        session=session,
        target=schedule.target,
        cohort_id=schedule.cohort_id,
        member_id=firing.member_id,
        now=now,
    )
    for target in targets:
        message = render(
            script, context_for(cohort=cohort, target=target, local_now=now.astimezone(tz))
        )
        await enqueue_message(
            session=session,
            key=outbox_key(schedule.id, target, firing.due_at),
            route=target.route,
            message=message,
            now=now,
        )
    firing.enqueued = len(targets)
    return FiringStatus.FIRED


async def due_firings(*, session: AsyncSession, now: datetime) -> Sequence[int]:
    return (
        (
            await session.execute(
                select(Firing.id)
                .where(Firing.status == FiringStatus.PLANNED, Firing.due_at <= now)
                .order_by(Firing.due_at)
                .limit(BATCH)
            )
        )
        .scalars()
        .all()
    )


async def fire_due(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    default_tz: str,
    grace: timedelta = MISFIRE_GRACE,
) -> FireReport:
    """Fire everything due; each firing in its own transaction."""
    report = FireReport()
    async with sessions() as session:
        ids = await due_firings(session=session, now=clock.now())
    for firing_id in ids:
        try:
            async with sessions.begin() as session:
                firing = await session.get(Firing, firing_id)
                assert firing is not None
                status = await fire(
                    session=session,
                    firing=firing,
                    now=clock.now(),
                    default_tz=default_tz,
                    grace=grace,
                )
                report.enqueued += firing.enqueued if status == FiringStatus.FIRED else 0
        except Exception as exc:
            # A script that no longer renders, a bad target: record it on the firing.
            logger.exception("firing %s failed", firing_id)
            await _record_failure(sessions, firing_id, exc, clock.now())
            report.failed += 1
            continue
        report.fired += status == FiringStatus.FIRED
        report.missed += status == FiringStatus.MISSED
    return report


async def _record_failure(
    sessions: async_sessionmaker[AsyncSession], firing_id: int, exc: Exception, now: datetime
) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(Firing)
            .where(Firing.id == firing_id, Firing.status == FiringStatus.PLANNED)
            .values(
                status=FiringStatus.MISSED,
                fired_at=now,
                note=f"发送失败：{type(exc).__name__}: {exc}"[:2000],
            )
        )
