"""The pack's check-in reminder and leaderboard fire as script jobs: a schedule on the
`checkin_reminder` script reaches each unchecked person by their own channel with their own
link, the `leaderboard` one posts the ranks; firing twice sends nothing twice."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from schedules.models import Schedule
from schedules.planner import plan_schedule
from schedules.runner import fire_due
from tests.bots.checkin.camp import T_START
from tests.bots.checkin.test_reminders import BASE_URL, DAY1_2100, EXTENSIONS, TZ, _rows, _seed

Sessions = async_sessionmaker[AsyncSession]


async def _schedule(sessions: Sessions, cohort_id: int, script_key: str, target: dict) -> None:
    async with sessions.begin() as session:
        schedule = Schedule(
            script_key=script_key,
            cohort_id=cohort_id,
            trigger={"type": "at", "at": DAY1_2100.isoformat()},
            target=target,
            enabled=True,
            created_at=T_START,
            updated_at=T_START,
        )
        session.add(schedule)
        await session.flush()
        await plan_schedule(session=session, schedule=schedule, now=T_START, default_tz=TZ)


async def test_the_pack_reminder_and_leaderboard_fire_as_jobs(
    sessions: Sessions, clock: ManualClock
) -> None:
    camp = await _seed(sessions)
    unchecked = {"type": "members", "filter": "not_checked_in_today"}
    await _schedule(sessions, camp.cohort_id, "checkin_reminder", unchecked)
    await _schedule(sessions, camp.cohort_id, "leaderboard", {"type": "cohort_groups"})
    clock.set(DAY1_2100 + timedelta(seconds=5))

    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ, extensions=EXTENSIONS)

    assert (report.fired, report.failed) == (2, 0)
    rows = await _rows(sessions)
    reminders = {r.target: r for r in rows if r.key.startswith("checkin_reminder:")}
    # 阿杰 and Amy (external) by one merged mass send per staff member (their links are in
    # the welcome), 孙七 by app message with his link, the robot group @ 王五.
    assert {r.channel for r in reminders.values()} == {
        "customer_single",
        "app_message",
        "robot",
    }
    merged = [r for r in reminders.values() if r.channel == "customer_single"]
    assert sorted(r.target for r in merged) == ["lisi", "zhangsan"]  # the staff members
    assert sorted(str(e) for r in merged for e in r.payload["external_userids"]) == [
        "wmAmy1",
        "wm阿杰1",
    ]
    [app] = [r for r in reminders.values() if r.channel == "app_message"]
    assert f"{BASE_URL}/h5/m/" in str(app.payload)
    boards = [r for r in rows if r.key.startswith("leaderboard:")]
    assert len(boards) == 2  # the robot group and the customer group
    assert report.enqueued == len(rows)

    # The double firing two schedulers could cause adds nothing.
    again = await fire_due(sessions=sessions, clock=clock, default_tz=TZ, extensions=EXTENSIONS)
    assert again.enqueued == 0
    assert len(await _rows(sessions)) == len(rows)
