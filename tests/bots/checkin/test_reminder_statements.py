"""A merged reminder (one 群发 to many students) spends their 群发 quota in as many SQL
statements for 12 students as for 2 — not ~3 a student — and still reaches them all."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.admin.models import CohortMember
from app.channels.messages import OutMessage
from app.channels.reach import Channel
from app.channels.routing import DEFAULT_ROUTING, StudentPush, route_students
from app.models import Member, OutboxMessage
from bots.checkin import reminders
from scripts_library.loader import DEFAULT_PACK, import_pack
from tests.bots.checkin.camp import T_START, local, make_cohort, make_member
from tests.bots.qa.test_round_trips import counted

Sessions = async_sessionmaker[AsyncSession]
DAY1_2100 = local(1, 21)


async def _camp(sessions: Sessions, state: str, students: int) -> int:
    """A cohort of `students` external students, all of one staff member (`state`), none
    checked in."""
    async with sessions.begin() as session:
        cohort = await make_cohort(session, state=state)
        for i in range(students):
            member = await make_member(session, cohort, f"{state}学员{i}")
            member.staff_userid = state
        return cohort.id


async def _quota_statements(
    sessions: Sessions, engine: AsyncEngine, cohort_id: int, staff: str
) -> tuple[int, list[str]]:
    """The quota statements a cohort's reminder costs, and its merged 群发's recipients."""
    with counted(engine) as statements:
        async with sessions.begin() as session:
            await reminders.send_checkin_reminders(
                session=session,
                cohort_id=cohort_id,
                now=DAY1_2100,
                public_base_url="https://camp.example.com",
            )
    async with sessions() as session:
        rows = await session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.channel == Channel.CUSTOMER_SINGLE, OutboxMessage.target == staff
            )
        )
        recipients = [r for row in rows for r in row.payload["external_userids"]]  # type: ignore[index]
    return sum("mass_send_quota" in s for s in statements), sorted(recipients)


async def test_a_merged_reminders_quota_costs_the_same_for_2_or_12_students(
    sessions: Sessions, engine: AsyncEngine
) -> None:
    async with sessions.begin() as session:
        await import_pack(
            session=session, paths=[DEFAULT_PACK / "10_daily.yaml"], author="test", now=T_START
        )
    few, many = await _camp(sessions, "few", 2), await _camp(sessions, "many", 12)

    few_statements, few_reached = await _quota_statements(sessions, engine, few, "few")
    many_statements, many_reached = await _quota_statements(sessions, engine, many, "many")

    assert (len(few_reached), len(many_reached)) == (2, 12)  # one 群发 each, everyone in it
    assert many_statements == few_statements
    assert few_statements <= 5  # savepoint, holds, taken slots, insert, release


async def _students(sessions: Sessions, cohort_id: int) -> list[Member]:
    async with sessions() as session:
        found = await session.scalars(
            select(Member)
            .join(CohortMember, CohortMember.member_id == Member.id)
            .where(CohortMember.cohort_id == cohort_id)
            .order_by(Member.id)
        )
        return list(found)


async def test_without_the_camps_clock_their_calendars_are_looked_up_at_once(
    sessions: Sessions, engine: AsyncEngine
) -> None:
    """A schedule outside a cohort routes with no time zone: each student's is looked up."""
    cost: list[int] = []
    for state, students in (("few", 2), ("many", 12)):
        members = await _students(sessions, await _camp(sessions, state, students))
        pushes = [StudentPush(m, OutMessage("text", content="今晚八点直播")) for m in members]
        with counted(engine) as statements:
            async with sessions.begin() as session:
                [merged] = await route_students(
                    session=session,
                    pushes=pushes,
                    delivery=None,
                    personal=False,
                    routing=DEFAULT_ROUTING,
                    key_of=lambda label, state=state: f"push:{state}:{label}",
                    now=DAY1_2100,
                )
        assert len(merged.recipients) == students
        cost.append(len(statements))
    assert cost[1] == cost[0]
