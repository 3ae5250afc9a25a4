"""A 500-member, 21-day cohort: the figures, and a fixed number of queries however many
members there are (statistics are SQL aggregates, not a loop over members)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import event, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.admin.models import Cohort, CohortMember
from app.clock import ManualClock
from app.models import Member
from bots.checkin.models import CheckinEntry
from tests.admin.conftest import Admin
from tests.bots.stats.seed import local

MEMBERS, DAYS = 500, 21
T = datetime(2026, 2, 28, tzinfo=UTC)


def checks_in(i: int, day: int) -> bool:
    return (i + day) % 4 != 0  # 3 in 4 members each day


async def seed_large(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session, session.begin():
        cohort = Cohort(
            name="大期",
            camp="21 天写作营",
            start_date=date(2026, 3, 2),
            days=DAYS,
            channel_state="big",
            timezone="Asia/Shanghai",
            created_at=T,
            updated_at=T,
        )
        session.add(cohort)
        await session.flush()
        await session.execute(
            insert(Member),
            [
                {"external_userid": f"wm{i}", "staff_userid": f"a{i % 5}", "status": "active"}
                | {"created_at": T, "updated_at": T}
                for i in range(MEMBERS)
            ],
        )
        ids = list((await session.scalars(select(Member.id).order_by(Member.id))).all())
        await session.execute(
            insert(CohortMember),
            [{"member_id": m, "cohort_id": cohort.id, "joined_at": T} for m in ids],
        )
        rows: list[dict[str, Any]] = []
        for i, member_id in enumerate(ids):
            for day in range(DAYS):
                base = {"member_id": member_id, "cohort_id": cohort.id, "day": day}
                base |= {"status": "on_time", "submitted_at": T, "updated_at": T}
                if checks_in(i, day):
                    rows.append(base | {"kind": "checkin"})
                if i % 2 == 0:
                    rows.append(base | {"kind": "homework"})
        await session.execute(insert(CheckinEntry), rows)
        return cohort.id


async def test_large_cohort(
    admin: Admin,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
) -> None:
    cohort_id = await seed_large(sessions)
    if engine.dialect.name == "postgresql":
        # A live database has planner statistics (autovacuum analyzes a table after it
        # grows by 10%); without them PostgreSQL takes these 13,000 freshly loaded rows for
        # one and picks nested loops (measured: 14.6 s instead of about 0.2 s).
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))
    clock.set(local("03-22", "12:00"))  # day 20, the last
    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    started = time.perf_counter()
    response = await admin.get(f"/stats/cohorts/{cohort_id}")
    elapsed = time.perf_counter() - started
    event.remove(engine.sync_engine, "before_cursor_execute", count)
    assert response.status_code == 200, response.text
    # Shown with -s: the figure quoted in the report.
    figures = f"{elapsed * 1000:.0f} ms, {len(statements)} queries"
    print(f"\n{MEMBERS} members × {DAYS} days: {figures}")  # noqa: T201
    body = response.json()
    # A fixed handful of queries, none per member or per day.
    assert len(statements) <= 20
    days = body["days"]
    assert len(days) == DAYS
    assert {d["members"] for d in days} == {MEMBERS}
    # (i + day) % 4 == 0 for exactly 125 of 500 members each day.
    assert {d["checked_in"] for d in days} == {375}
    assert {d["checkin_rate"] for d in days} == {0.75}
    assert {d["homework_rate"] for d in days} == {0.5}
    assert body["summary"]["full_attendance"] == 0  # everyone misses every 4th day
    assistants = {a["staff_userid"]: a for a in body["assistants"]}
    assert sorted(assistants) == ["a0", "a1", "a2", "a3", "a4"]
    assert sum(a["member_days"] for a in assistants.values()) == MEMBERS * DAYS
    # The longest run without a (i + day) % 4 == 0 day is 3 days; no score rows → all "0 天".
    assert body["streaks"][0]["current"] == MEMBERS
