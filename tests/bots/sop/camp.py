"""A camp whose groups are customer groups, with the content pack's timetable (as the demo
sets it up: one schedule per timed pack script), for routing and 群SOP tests."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import CohortGroup
from app.capability import Extensions
from app.channels.routing import Routing
from app.models import Group, Member
from app.settings import QuotaMode, Settings
from schedules.models import Firing, FiringStatus, Schedule
from schedules.planner import plan_schedule
from scripts_library.loader import DEFAULT_PACK, import_pack
from scripts_library.models import Script
from tests.bots.checkin.camp import T_START, make_cohort, make_member
from tests.support import wired

TZ = "Asia/Shanghai"
CHAT = "wrCustomer1"
OWNER, ASSISTANT = "zhangsan", "lisi"


@dataclass(frozen=True, slots=True)
class Camp:
    cohort_id: int
    group_id: int
    students: dict[str, int]


async def customer_camp(
    sessions: async_sessionmaker[AsyncSession], *, students: tuple[str, ...] = ()
) -> Camp:
    """A cohort (day 0 = 2026-03-02, Shanghai) with one customer group run by an assistant,
    the pack imported, and external students followed by the owner."""
    async with sessions.begin() as session:
        cohort = await make_cohort(session)
        group = Group(
            name="6期学员群",
            channel="customer",
            chat_id=CHAT,
            owner_userid=OWNER,
            assistant_userid=ASSISTANT,
            status="active",
            needs_sync=False,
            created_at=T_START,
            updated_at=T_START,
        )
        session.add(group)
        await session.flush()
        session.add(CohortGroup(group_id=group.id, cohort_id=cohort.id, linked_at=T_START))
        ids = {}
        for name in students:
            member = await make_member(session, cohort, name)
            member.staff_userid = OWNER
            ids[name] = member.id
        await import_pack(session=session, paths=[DEFAULT_PACK], author="test", now=T_START)
        return Camp(cohort.id, group.id, ids)


async def pack_timetable(sessions: async_sessionmaker[AsyncSession], cohort_id: int) -> int:
    """One schedule per timed script of the pack for the cohort's groups (the demo's way);
    how many."""
    async with sessions.begin() as session:
        scripts = list(await session.scalars(select(Script).order_by(Script.id)))
        planned = 0
        for script in scripts:
            hint = script.schedule_hint or {}
            if hint.get("type") not in ("cohort_day", "member_day", "cron"):
                continue
            target = hint.get("target") or {"type": "cohort_groups"}
            if target.get("type") != "cohort_groups":
                continue
            trigger: dict[str, Any] = {
                k: hint[k] for k in ("type", "day", "time", "cron") if k in hint
            }
            await add_schedule(session, cohort_id, script.key, trigger, target)
            planned += 1
        return planned


async def add_schedule(
    session: AsyncSession,
    cohort_id: int,
    script_key: str,
    trigger: dict[str, Any],
    target: dict[str, Any] | None = None,
) -> None:
    """A schedule of the script (to the cohort's groups unless told), its firings planned."""
    schedule = Schedule(
        script_key=script_key,
        cohort_id=cohort_id,
        trigger=trigger,
        target=target or {"type": "cohort_groups"},
        enabled=True,
        created_at=T_START,
        updated_at=T_START,
    )
    session.add(schedule)
    await session.flush()
    await plan_schedule(session=session, schedule=schedule, now=T_START, default_tz=TZ)


async def planned_until(
    sessions: async_sessionmaker[AsyncSession], until: datetime
) -> list[datetime]:
    async with sessions() as session:
        rows = await session.scalars(
            select(Firing.due_at)
            .where(Firing.status == FiringStatus.PLANNED, Firing.due_at <= until)
            .order_by(Firing.due_at)
        )
        return sorted(set(rows))


def extensions(settings: Settings, mode: QuotaMode) -> Extensions:
    return replace(wired(settings), routing=Routing(mode, TZ))


async def member(session: AsyncSession, member_id: int) -> Member:
    found = await session.get(Member, member_id)
    assert found is not None
    return found


END = datetime(2026, 3, 9, 15, 59, tzinfo=UTC)  # day 7, 23:59 in Shanghai
