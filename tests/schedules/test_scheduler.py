"""The scheduler loop: pushes go out on the second (not on a 15 s poll), and exactly one
instance leads, on SQLite too."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import instances
from app.clock import ManualClock, SystemClock
from app.instances import Identity
from app.models import OutboxMessage
from app.settings import Settings
from schedules.models import Firing, FiringStatus
from schedules.scheduler import run_scheduler, try_lead
from tests.schedules.camp import TZ, camp
from tests.support import wired

# What a push may lag its due time by, measured to when its row was written (the row's
# created_at: the scheduler's real clock as it fired, not when this test's polling saw it).
# The target is p99 < 1 s; a loaded CI machine gets a little slack, the 15 s poll none.
LATE_S = 1.5


@contextlib.asynccontextmanager
async def scheduler(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> AsyncIterator[None]:
    """`run_scheduler` as the lifespan starts it, for a registered instance."""
    identity = Identity.of_this_process("server")
    clock = SystemClock()
    async with instances.running(sessions=sessions, identity=identity, clock=clock):
        stop = asyncio.Event()
        task = asyncio.create_task(
            run_scheduler(
                stop,
                engine=engine,
                sessions=sessions,
                clock=clock,
                default_tz=TZ,
                extensions=wired(Settings(_env_file=None)),  # type: ignore[call-arg]
                instance=identity.id,
            )
        )
        try:
            yield
        finally:
            stop.set()
            await asyncio.wait_for(task, 15)


async def _rows_when_written(
    sessions: async_sessionmaker[AsyncSession], count: int, within: float
) -> list[OutboxMessage]:
    """The outbox rows once `count` are there; fails after `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        async with sessions() as session:
            rows = list((await session.execute(select(OutboxMessage))).scalars())
        if len(rows) >= count:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {count} outbox rows after {within} s")


def _lateness(rows: list[OutboxMessage], due: datetime) -> float:
    """How long after `due` the last of the rows was written, in seconds."""
    return (max(row.created_at for row in rows) - due).total_seconds()


def _at(seconds: float) -> tuple[dict[str, str], datetime]:
    due = (datetime.now(UTC) + timedelta(seconds=seconds)).replace(microsecond=0)
    return {"type": "at", "at": due.isoformat()}, due


async def test_a_push_planned_while_the_scheduler_sleeps_goes_out_on_time(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with scheduler(engine, sessions):
        await asyncio.sleep(0.5)  # it leads and sleeps (nothing is planned yet)
        trigger, due = _at(2.5)
        # Planned in this process: the commit wakes the scheduler.
        await camp(sessions, ManualClock(datetime.now(UTC)), trigger)
        rows = await _rows_when_written(sessions, 2, within=10)
    assert _lateness(rows, due) < LATE_S, f"the push went out {_lateness(rows, due):.2f} s late"
    assert all(row.created_at >= due for row in rows)  # not early either


async def test_a_firing_another_instance_planned_is_seen_within_a_second(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    far, _ = _at(3600)
    await camp(sessions, ManualClock(datetime.now(UTC)), far)
    async with scheduler(engine, sessions):
        await asyncio.sleep(0.5)
        due = datetime.now(UTC) + timedelta(seconds=1.5)
        # Moved by another instance: no commit of this process wakes the scheduler.
        async with sessions.begin() as session:
            await session.execute(
                update(Firing).where(Firing.status == FiringStatus.PLANNED).values(due_at=due)
            )
        rows = await _rows_when_written(sessions, 2, within=10)
    assert _lateness(rows, due) < LATE_S, f"the push went out {_lateness(rows, due):.2f} s late"


@pytest.mark.parametrize("engine", ["sqlite"], indirect=True)
async def test_on_sqlite_one_instance_leads_until_its_heartbeat_stops(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]
) -> None:
    clock = ManualClock(datetime(2026, 3, 1, 9, 0, tzinfo=UTC))
    first, second = (Identity.of_this_process("server") for _ in range(2))
    for identity in (first, second):
        await instances.register(sessions=sessions, identity=identity, now=clock.now())

    leader = await try_lead(engine, sessions=sessions, holder=first.id, clock=clock)
    assert leader is not None
    assert await try_lead(engine, sessions=sessions, holder=second.id, clock=clock) is None
    clock.advance(timedelta(seconds=3))
    assert await leader.held()  # renewed by its holder
    assert await try_lead(engine, sessions=sessions, holder=second.id, clock=clock) is None

    # The leader stops beating (killed); the other keeps beating and takes over.
    clock.advance(timedelta(seconds=6))
    async with sessions.begin() as session:
        await instances.beat(session=session, identity=second, now=clock.now())
    successor = await try_lead(engine, sessions=sessions, holder=second.id, clock=clock)
    assert successor is not None
    assert not await leader.held()  # a leader that was taken over steps down
    await successor.release()
    assert await try_lead(engine, sessions=sessions, holder=first.id, clock=clock) is not None
