"""The scheduler: fires each firing at its due time, on exactly one instance.

Firings live in SQL, so nothing is lost across restarts. The leader sleeps until the next
due firing and fires it (`fire_due`: everything due then). Its sleep is cut short when
this process plans or moves firings (`schedules.wake`), and it re-reads the next due time
every RECHECK_S, so a firing another instance planned is seen within that. APScheduler
runs the slow jobs: a safety tick that fires whatever is due every SAFETY_TICK_S, and the
re-plan (cron horizons, members who joined) every REPLAN_EVERY_S.

Leadership (`Leadership`): on PostgreSQL an advisory lock held by one connection of the
leader; the others try again every LEADERSHIP_RETRY_S. The lock ends with that
connection: when the leader dies its socket closes and a follower leads within about a
second; keepalives end the connection of a host that vanished within about 10 s. On
SQLite (one machine; `--workers` may run several processes) a row lease (`app.leases`)
renewed every LEADERSHIP_RETRY_S: a dead leader's lease is free once its instance's
heartbeat is stale (`app.instances.STALE_AFTER`, 5 s). A leader that loses its lock or
lease stops firing at once. The outbox keys, not leadership, are what keep a double
firing from sending twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app import leases, metrics
from app.background import sleep_or_stop
from app.capability import Extensions
from app.clock import Clock
from schedules import wake
from schedules.models import Firing, FiringStatus
from schedules.planner import plan_all
from schedules.runner import MISFIRE_GRACE, FireReport, fire_due

logger = logging.getLogger(__name__)

LEADER_LOCK_ID = 0x43414D50  # "CAMP"
LEASE_NAME = "scheduler"
LEASE_TTL = timedelta(seconds=10)
LEADERSHIP_RETRY_S = 1.0
# How often the leader re-reads the next due firing (planned by another instance).
RECHECK_S = 1.0
SAFETY_TICK_S = 60.0
REPLAN_EVERY_S = 600.0
# The leader's lock connection: the server drops it (and the lock) when the leader's host
# stops answering for idle + interval × count seconds.
_KEEPALIVES = {"tcp_keepalives_idle": 4, "tcp_keepalives_interval": 2, "tcp_keepalives_count": 3}


class Leadership:
    """This instance leads while `held()` says so; `release` gives it up."""

    def __init__(
        self,
        *,
        connection: AsyncConnection | None = None,
        sessions: async_sessionmaker[AsyncSession] | None = None,
        holder: str = "",
        clock: Clock | None = None,
    ) -> None:
        self._connection = connection
        self._sessions = sessions
        self._holder = holder
        self._clock = clock

    async def held(self) -> bool:
        """Still the leader: the lock's connection answers, or the lease was renewed."""
        try:
            if self._connection is not None:
                await self._connection.execute(text("SELECT 1"))
                await self._connection.commit()
                return True
            if self._sessions is not None and self._clock is not None:
                async with self._sessions.begin() as session:
                    return await leases.acquire(
                        session=session,
                        name=LEASE_NAME,
                        holder=self._holder,
                        now=self._clock.now(),
                        ttl=LEASE_TTL,
                    )
        except Exception:
            logger.exception("scheduler leadership could not be checked; stepping down")
            return False
        return True

    async def release(self) -> None:
        with contextlib.suppress(Exception):  # a dead connection released it already
            if self._connection is not None:
                await self._connection.close()  # closing the session releases the lock
            elif self._sessions is not None:
                async with self._sessions.begin() as session:
                    await leases.release(session=session, name=LEASE_NAME, holder=self._holder)


async def try_lead(
    engine: AsyncEngine,
    *,
    sessions: async_sessionmaker[AsyncSession] | None = None,
    holder: str | None = None,
    clock: Clock | None = None,
) -> Leadership | None:
    """Leadership, or None when another instance holds it. SQLite needs the instance
    (`holder`, registered in app.instances) whose heartbeat keeps the lease."""
    if engine.dialect.name == "postgresql":
        return await _try_lock(engine)
    if sessions is None or holder is None or clock is None:
        return Leadership()  # a process with no instance identity: it leads alone
    async with sessions.begin() as session:
        got = await leases.acquire(
            session=session, name=LEASE_NAME, holder=holder, now=clock.now(), ttl=LEASE_TTL
        )
    return Leadership(sessions=sessions, holder=holder, clock=clock) if got else None


async def _try_lock(engine: AsyncEngine) -> Leadership | None:
    connection = await engine.connect()
    try:
        got = await connection.scalar(
            text("SELECT pg_try_advisory_lock(:id)"), {"id": LEADER_LOCK_ID}
        )
        if got:
            for name, value in _KEEPALIVES.items():
                await connection.execute(text(f"SET {name} = {int(value)}"))
            await connection.commit()  # end the implicit transaction; the session lock stays
            return Leadership(connection=connection)
    except BaseException:
        await connection.close()
        raise
    await connection.close()
    return None


# --------------------------------------------------------------------------- firing on time


async def next_due(sessions: async_sessionmaker[AsyncSession]) -> datetime | None:
    """The due time of the earliest planned firing (ix_schedule_firings_status_due_at)."""
    async with sessions() as session:
        return await session.scalar(
            select(func.min(Firing.due_at)).where(Firing.status == FiringStatus.PLANNED)
        )


class Firer:
    """Fires what is due, one call at a time (the timer and the safety tick share it)."""

    def __init__(self, fire: Callable[[], Awaitable[FireReport]]) -> None:
        self._fire = fire
        self._lock = asyncio.Lock()

    async def fire(self) -> FireReport:
        async with self._lock:
            started = time.monotonic()
            report = await self._fire()
            if report.did_anything:
                logger.info(
                    "scheduler fired %d firings (%d rows), %d missed, %d failed in %.2f s",
                    report.fired,
                    report.enqueued,
                    report.missed,
                    report.failed,
                    time.monotonic() - started,
                )
            return report


async def fire_on_time(
    stop: asyncio.Event,
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    firer: Firer,
    leadership: Leadership,
) -> None:
    """Sleep until the next due firing (or a change, or RECHECK_S), fire; until `stop`
    is set or leadership is lost."""
    changed = wake.listen()
    checked = time.monotonic()
    try:
        while not stop.is_set():
            if time.monotonic() - checked >= LEADERSHIP_RETRY_S:
                if not await leadership.held():
                    logger.warning("this instance no longer leads the scheduler")
                    return
                checked = time.monotonic()
            changed.clear()
            due = await next_due(sessions)
            wait = RECHECK_S
            if due is not None:
                wait = min(wait, (due - clock.now()).total_seconds())
            if wait <= 0:
                report = await firer.fire()
                if not report.did_anything:
                    # Due but not fired: another scheduler holds it; do not spin.
                    await _sleep_or_change(stop, changed, RECHECK_S)
                continue
            await _sleep_or_change(stop, changed, wait)
    finally:
        wake.unlisten(changed)


async def _sleep_or_change(stop: asyncio.Event, changed: asyncio.Event, seconds: float) -> None:
    waiters = [asyncio.ensure_future(changed.wait()), asyncio.ensure_future(stop.wait())]
    try:
        await asyncio.wait(waiters, timeout=max(seconds, 0.0), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


# --------------------------------------------------------------------------- the slow jobs


async def _replan(sessions: async_sessionmaker[AsyncSession], clock: Clock, tz: str) -> None:
    async with sessions.begin() as session:
        await plan_all(session=session, now=clock.now(), default_tz=tz)


def build_scheduler(
    *, sessions: async_sessionmaker[AsyncSession], clock: Clock, default_tz: str, firer: Firer
) -> AsyncIOScheduler:
    """APScheduler with the slow jobs: the safety tick and the re-plan."""
    scheduler = AsyncIOScheduler(timezone="UTC")
    jobs = {"coalesce": True, "max_instances": 1, "replace_existing": True}
    scheduler.add_job(firer.fire, "interval", seconds=SAFETY_TICK_S, id="fire-due", **jobs)
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
    instance: str | None = None,
) -> None:
    """Lead when possible and fire on time until `stop`; started by the lifespan, with the
    capabilities' `extensions` and this process's `instance` (app.instances)."""
    fire = partial(
        fire_due,
        sessions=sessions,
        clock=clock,
        default_tz=default_tz,
        grace=MISFIRE_GRACE,
        extensions=extensions,
    )
    firer = Firer(fire)
    while not stop.is_set():
        try:
            leader = await try_lead(engine, sessions=sessions, holder=instance, clock=clock)
        except Exception:
            logger.exception("scheduler leadership could not be tried")
            leader = None
        if leader is None:
            await sleep_or_stop(stop, LEADERSHIP_RETRY_S)
            continue
        await _lead(stop, leader, sessions=sessions, clock=clock, tz=default_tz, firer=firer)


async def _lead(
    stop: asyncio.Event,
    leader: Leadership,
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    tz: str,
    firer: Firer,
) -> None:
    scheduler = build_scheduler(sessions=sessions, clock=clock, default_tz=tz, firer=firer)
    logger.info("this instance leads the scheduler", extra={"pid": os.getpid()})
    metrics.SCHEDULER_LEADER.set(1)
    metrics.SCHEDULER_LEADERSHIPS.inc()
    try:
        await _replan(sessions, clock, tz)
        scheduler.start()
        await fire_on_time(stop, sessions=sessions, clock=clock, firer=firer, leadership=leader)
    except Exception:
        logger.exception("the scheduler failed; trying to lead again")
    finally:
        metrics.SCHEDULER_LEADER.set(0)
        scheduler.shutdown(wait=False)
        await leader.release()
    await sleep_or_stop(stop, LEADERSHIP_RETRY_S)  # let another lead, or try again
