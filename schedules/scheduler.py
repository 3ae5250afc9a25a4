"""The scheduler: APScheduler fires due firings and re-plans, on exactly one instance.

Firings live in SQL, so APScheduler only keeps time: a short interval job fires
whatever is due (nothing is lost across restarts) and a slower one re-plans
(cron horizons, members who joined). On PostgreSQL the instance holding an
advisory lock leads; the others keep trying, so a new leader takes over when the
old one dies. SQLite is single-process: that process leads.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from functools import partial

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.background import sleep_or_stop
from app.capability import Extensions
from app.clock import Clock
from schedules.planner import plan_all
from schedules.runner import MISFIRE_GRACE, fire_due

logger = logging.getLogger(__name__)

LEADER_LOCK_ID = 0x43414D50  # "CAMP"
FIRE_EVERY_S = 15.0
REPLAN_EVERY_S = 600.0
LEADERSHIP_RETRY_S = 30.0


class Leadership:
    """Held while this instance leads; `release` gives it up."""

    def __init__(self, connection: AsyncConnection | None) -> None:
        self._connection = connection

    async def release(self) -> None:
        if self._connection is not None:
            await self._connection.close()  # closing the session releases the lock


async def try_lead(engine: AsyncEngine) -> Leadership | None:
    """Leadership, or None when another instance holds it."""
    if engine.dialect.name != "postgresql":
        return Leadership(None)  # SQLite: one process, and no connection held idle
    connection = await engine.connect()
    got = await connection.scalar(text("SELECT pg_try_advisory_lock(:id)"), {"id": LEADER_LOCK_ID})
    if got:
        await connection.commit()  # end the implicit transaction; the session lock stays
        return Leadership(connection)
    await connection.close()
    return None


async def _replan(sessions: async_sessionmaker[AsyncSession], clock: Clock, tz: str) -> None:
    async with sessions.begin() as session:
        await plan_all(session=session, now=clock.now(), default_tz=tz)


def build_scheduler(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    default_tz: str,
    extensions: Extensions,
    grace: timedelta = MISFIRE_GRACE,
) -> AsyncIOScheduler:
    scheduler = AsyncIOScheduler(timezone="UTC")
    jobs = {"coalesce": True, "max_instances": 1, "replace_existing": True}
    fire = partial(
        fire_due,
        sessions=sessions,
        clock=clock,
        default_tz=default_tz,
        grace=grace,
        extensions=extensions,
    )
    scheduler.add_job(
        fire,
        "interval",
        seconds=FIRE_EVERY_S,
        id="fire-due",
        **jobs,
    )
    scheduler.add_job(
        partial(_replan, sessions, clock, default_tz),
        "interval",
        seconds=REPLAN_EVERY_S,
        id="replan",
        **jobs,
    )
    return scheduler


async def run_scheduler(
    stop: asyncio.Event,
    *,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    default_tz: str,
    extensions: Extensions,
) -> None:
    """Lead when possible and run the scheduler until `stop`; started by the lifespan, with
    the capabilities' `extensions` (script jobs, member filters, context providers)."""
    while not stop.is_set():
        leader = await try_lead(engine)
        if leader is None:
            await sleep_or_stop(stop, LEADERSHIP_RETRY_S)
            continue
        scheduler = build_scheduler(
            sessions=sessions, clock=clock, default_tz=default_tz, extensions=extensions
        )
        logger.info("this instance leads the scheduler")
        try:
            await _replan(sessions, clock, default_tz)
            scheduler.start()
            await stop.wait()
        finally:
            scheduler.shutdown(wait=False)
            await leader.release()
