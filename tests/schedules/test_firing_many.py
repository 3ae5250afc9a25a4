"""Firing many at once: firings share transactions, yet each one is still claimed with its
rows, recorded when it fails, and sent once, whatever else is in its transaction."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import outbox
from app.admin.models import CohortMember
from app.clock import ManualClock
from app.db import create_engine, create_sessionmaker
from app.models import Group, Member, OutboxMessage
from schedules import runner
from schedules.models import Firing, Schedule
from schedules.planner import plan_schedule
from schedules.runner import fire_due
from scripts_library.models import Script
from tests.schedules.camp import DAY1_0800, START, TZ, camp

DAY1 = {"type": "cohort_day", "day": 1, "time": "08:00"}
DUE = "20260303T000000Z"


@pytest.fixture
def small_transactions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Three firings to a transaction and pages of four, so a few firings cross both."""
    monkeypatch.setattr(runner, "FIRINGS_PER_TRANSACTION", 3)
    monkeypatch.setattr(runner, "BATCH", 4)


async def add_schedule(
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    *,
    script_key: str = "day1_tasks",
    trigger: dict[str, Any] = DAY1,
    target: dict[str, Any] | None = None,
) -> int:
    async with sessions.begin() as session:
        schedule = Schedule(
            script_key=script_key,
            cohort_id=1,
            trigger=trigger,
            target=target or {"type": "cohort_groups"},
            enabled=True,
            created_at=clock.now(),
            updated_at=clock.now(),
        )
        session.add(schedule)
        await session.flush()
        await plan_schedule(session=session, schedule=schedule, now=clock.now(), default_tz=TZ)
        return schedule.id


async def add_script(sessions: async_sessionmaker[AsyncSession], key: str, body: str) -> None:
    """A script as stored, without the validation that would refuse a broken one."""
    async with sessions.begin() as session:
        session.add(
            Script(
                key=key,
                title=key,
                category="daily",
                msgtype="text",
                body=body,
                attachments=[],
                schedule_hint=None,
                description="",
                version=1,
                created_at=DAY1_0800,
                updated_at=DAY1_0800,
            )
        )


async def outbox_rows(sessions: async_sessionmaker[AsyncSession]) -> dict[str, str]:
    async with sessions() as session:
        rows = await session.execute(select(OutboxMessage.key, OutboxMessage.payload))
        return {key: payload["message"]["content"] for key, payload in rows}


async def firings(
    sessions: async_sessionmaker[AsyncSession],
) -> dict[int, tuple[str, int, str | None]]:
    """Per schedule: its firing's status, rows enqueued and note."""
    async with sessions() as session:
        rows = (await session.execute(select(Firing))).scalars()
        return {f.schedule_id: (f.status, f.enqueued, f.note) for f in rows}


def expected(schedule_ids: Sequence[int]) -> dict[str, str]:
    return {
        f"schedule:{s}:robot:robot-{n}:{DUE}": f"6期{n}群的同学们早！今天是第 1 天。"
        for s in schedule_ids
        for n in (1, 2)
    }


async def test_every_due_firing_fires_in_one_call(
    sessions, clock: ManualClock, small_transactions: None
) -> None:
    ids = [await camp(sessions, clock)]
    ids += [await add_schedule(sessions, clock) for _ in range(9)]
    clock.set(DAY1_0800)
    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
    assert (report.fired, report.missed, report.failed, report.enqueued) == (10, 0, 0, 20)
    assert await outbox_rows(sessions) == expected(ids)
    assert set((await firings(sessions)).values()) == {("fired", 2, None)}
    assert (await fire_due(sessions=sessions, clock=clock, default_tz=TZ)).fired == 0


async def test_a_broken_firing_is_recorded_and_its_neighbours_go_out(
    sessions, clock: ManualClock
) -> None:
    good = await camp(sessions, clock)
    await add_script(sessions, "undefined_variable", "{{ no_such_variable }}")
    await add_script(sessions, "too_long", "{{ '字' * 1000 }}")  # 3,000 bytes; robots take 2,048
    no_script = await add_schedule(sessions, clock, script_key="deleted_since")
    undefined = await add_schedule(sessions, clock, script_key="undefined_variable")
    too_long = await add_schedule(sessions, clock, script_key="too_long")
    also_good = await add_schedule(sessions, clock)
    clock.set(DAY1_0800)
    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
    assert (report.fired, report.missed, report.failed, report.enqueued) == (2, 1, 2, 4)
    assert await outbox_rows(sessions) == expected([good, also_good])
    recorded = await firings(sessions)
    assert recorded[no_script] == ("missed", 0, "话术不存在：deleted_since")
    for schedule_id, words in ((undefined, "no_such_variable"), (too_long, "超过群机器人上限")):
        status, enqueued, note = recorded[schedule_id]
        assert (status, enqueued) == ("missed", 0)
        assert note is not None
        assert note.startswith("发送失败：")
        assert words in note


async def test_a_late_firing_is_missed_beside_one_on_time(sessions, clock: ManualClock) -> None:
    on_time = await camp(
        sessions, clock, trigger={"type": "cohort_day", "day": 1, "time": "08:15"}
    )
    late = await add_schedule(sessions, clock)  # 08:00, 15 minutes before the tick
    clock.set(DAY1_0800 + timedelta(minutes=15))
    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
    assert (report.fired, report.missed, report.enqueued) == (1, 1, 2)
    assert {key.split(":")[1] for key in await outbox_rows(sessions)} == {str(on_time)}
    status, enqueued, note = (await firings(sessions))[late]
    assert (status, enqueued) == ("missed", 0)
    assert "错过发送时间" in (note or "")


async def test_a_transaction_the_database_refuses_is_fired_one_by_one(
    sessions, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = await camp(sessions, clock)
    async with sessions.begin() as session:
        session.add(
            Group(
                name="坏群",
                channel="robot",
                robot_key="robot-refused",
                status="active",
                needs_sync=False,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
        )
    refused = await add_schedule(sessions, clock, target={"type": "groups", "group_ids": [3]})
    also_good = await add_schedule(sessions, clock)

    def refuse(keys: Sequence[str]) -> None:
        if any("robot-refused" in key for key in keys):
            raise OperationalError("INSERT INTO outbox …", {}, Exception("value too long"))

    real_many, real_one = runner.enqueue_many, outbox.enqueue

    async def enqueue_many(**kwargs: Any) -> int:
        refuse([row.key for row in kwargs["rows"]])
        return await real_many(**kwargs)

    async def enqueue(**kwargs: Any) -> int | None:
        refuse([kwargs["key"]])
        return await real_one(**kwargs)

    monkeypatch.setattr(runner, "enqueue_many", enqueue_many)
    monkeypatch.setattr(outbox, "enqueue", enqueue)
    clock.set(DAY1_0800)
    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
    assert (report.fired, report.failed, report.enqueued) == (2, 1, 4)
    assert await outbox_rows(sessions) == expected([good, also_good])
    status, enqueued, note = (await firings(sessions))[refused]
    assert (status, enqueued) == ("missed", 0)
    assert "value too long" in (note or "")


async def add_members(sessions: async_sessionmaker[AsyncSession], clock: ManualClock) -> None:
    """小林, an external contact followed by staff s1, and an internal member without a name,
    both in cohort 1 since its first morning."""
    joined = datetime.combine(START, time(9), tzinfo=UTC)
    async with sessions.begin() as session:
        for external, userid, name in (("wm-1", None, "小林"), (None, "u2", None)):
            member = Member(
                external_userid=external,
                userid=userid,
                name=name,
                status="active",
                staff_userid="s1" if external else None,
                created_at=clock.now(),
                updated_at=clock.now(),
            )
            session.add(member)
            await session.flush()
            session.add(CohortMember(member_id=member.id, cohort_id=1, joined_at=joined))


async def test_members_and_staff_each_get_their_own_text(sessions, clock: ManualClock) -> None:
    await camp(sessions, clock)
    await add_members(sessions, clock)
    await add_script(sessions, "cheer", "{{ student_name }}，第 {{ day }} 天加油")
    await add_script(sessions, "plain", "{{ camp_name }}第 {{ day }} 天")
    members = {"type": "members", "filter": "all"}
    everyone = await add_schedule(sessions, clock, script_key="cheer", target=members)
    each = await add_schedule(
        sessions,
        clock,
        script_key="cheer",
        trigger={"type": "member_day", "day": 1, "time": "08:00"},
        target=members,
    )
    staff = await add_schedule(
        sessions, clock, script_key="plain", target={"type": "staff", "userids": ["boss"]}
    )
    clock.set(DAY1_0800)
    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
    # Firings: the camp's, everyone's, one per member, staff's; rows: 2 groups, 2, 2, 1.
    assert (report.fired, report.failed, report.enqueued) == (5, 0, 7)
    rows = await outbox_rows(sessions)
    for schedule_id in (everyone, each):
        # A personal text to an external student: a 1:1 群SOP item for their staff member.
        assert rows[f"schedule:{schedule_id}:staff:wm-1:{DUE}"] == "小林，第 1 天加油"
        assert rows[f"schedule:{schedule_id}:app_message:u2:{DUE}"] == "同学，第 1 天加油"
    assert rows[f"schedule:{staff}:app_message:boss:{DUE}"] == "跨境电商实战营第 1 天"
    assert len(rows) == 7


async def test_two_schedulers_share_the_firings_and_send_each_once(
    sessions, clock: ManualClock, engine, small_transactions: None
) -> None:
    ids = [await camp(sessions, clock)]
    ids += [await add_schedule(sessions, clock) for _ in range(11)]
    clock.set(DAY1_0800)
    other = create_engine(engine.url.render_as_string(hide_password=False))
    try:
        reports = await asyncio.gather(
            fire_due(sessions=sessions, clock=clock, default_tz=TZ),
            fire_due(sessions=create_sessionmaker(other), clock=clock, default_tz=TZ),
        )
    finally:
        await other.dispose()
    assert sum(r.fired for r in reports) == 12
    assert sum(r.failed + r.missed for r in reports) == 0
    assert await outbox_rows(sessions) == expected(ids)
