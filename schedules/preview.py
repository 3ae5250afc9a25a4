"""What a cohort edit would re-plan, before it is saved: the edit is made (through the cohorts
service, with the re-plan hooks, as saving would) inside a savepoint, the cohort's planned
firings are compared before and after, and the savepoint is rolled back — nothing is kept."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.cohorts.service import CohortHook, update_cohort
from app.admin.common import Actor
from schedules.models import Firing, FiringStatus, Schedule


@dataclass(frozen=True, slots=True)
class Moved:
    schedule_id: int
    script_key: str
    occurrence: str
    before: datetime | None  # None: planned only after the change
    after: datetime | None  # None: no longer planned


@dataclass(frozen=True, slots=True)
class Replan:
    moved: list[Moved]
    unchanged: int  # planned firings the change leaves where they are
    sent: int  # firings already fired: never sent again, whatever moves


Planned = dict[tuple[int, str], tuple[str, datetime]]


async def _planned(session: AsyncSession, cohort_id: int) -> Planned:
    rows = await session.execute(
        select(Firing.schedule_id, Firing.occurrence, Schedule.script_key, Firing.due_at)
        .join(Schedule, Schedule.id == Firing.schedule_id)
        .where(Schedule.cohort_id == cohort_id, Firing.status == FiringStatus.PLANNED)
    )
    return {(sid, occ): (key, due) for sid, occ, key, due in rows}


async def preview_cohort_change(
    *,
    session: AsyncSession,
    cohort_id: int,
    changes: Mapping[str, Any],
    now: datetime,
    hooks: Collection[CohortHook],
    actor: Actor,
) -> Replan:
    """The firings `changes` would move; the cohorts service's refusals pass through."""
    before = await _planned(session, cohort_id)
    savepoint = await session.begin_nested()
    try:
        await update_cohort(
            session=session,
            actor=actor,
            now=now,
            cohort_id=cohort_id,
            changes=changes,
            hooks=hooks,
        )
        after = await _planned(session, cohort_id)
    finally:
        await savepoint.rollback()
    sent = await session.scalar(
        select(func.count())
        .select_from(Firing)
        .join(Schedule, Schedule.id == Firing.schedule_id)
        .where(Schedule.cohort_id == cohort_id, Firing.status == FiringStatus.FIRED)
    )
    moved = _moved(before, after)
    moved.sort(key=lambda m: m.after or m.before or now)
    kept = sum(1 for k in set(before) & set(after) if before[k][1] == after[k][1])
    return Replan(moved=moved, unchanged=kept, sent=int(sent or 0))


def _moved(before: Planned, after: Planned) -> list[Moved]:
    moved = []
    for slot in sorted(set(before) | set(after)):
        old, new = before.get(slot), after.get(slot)
        if old is not None and new is not None and old[1] == new[1]:
            continue
        key = (old or new or ("", None))[0]
        moved.append(
            Moved(slot[0], key, slot[1], old[1] if old else None, new[1] if new else None)
        )
    return moved
