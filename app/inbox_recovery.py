"""The inbox's safety nets (ARCHITECTURE §1 rule 2): nothing received is lost or run forever.

The resumer runs again, within seconds, the rows of an instance that is gone (at once when
it restarts on the same machine), time-critical events first. The sweeper re-runs rows left
`received` for STUCK_AFTER whatever their instance, fails rows whose attempts ran out (so
operators see them) and forgets handled rows past the retention.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Sequence
from datetime import datetime
from functools import partial

from sqlalchemy import case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.background import every
from app.clock import Clock
from app.db import session_scope
from app.inbox import KEY_RETENTION, MAX_ATTEMPTS, STUCK_AFTER, InboxProcessor
from app.instances import gone, live_ids
from app.models import InboxEvent, InboxStatus

SWEEP_INTERVAL_S = 30.0
# How often rows of an instance that is gone are looked for (a welcome has 20 s), and how
# many are resumed at once.
RESUME_INTERVAL_S = 1.0
RESUME_BATCH = 100
# A resume pass reads every `received` row (thousands under a burst: ~16 ms of PostgreSQL's
# CPU a pass, each second, on every instance), so it runs when it may find something: the
# live instances changed, the last pass was full, or this long went by (an instance that
# started and died between two passes changes nothing they see).
RESUME_AT_LEAST_S = 10.0

# The lines keep the logger name they always had.
logger = logging.getLogger("app.inbox")


async def find_stuck(
    *, session: AsyncSession, now: datetime, limit: int = 100
) -> Sequence[tuple[int, int]]:
    """(id, attempts) of rows left `received` by a worker that is presumably gone."""
    statement = (
        select(InboxEvent.id, InboxEvent.attempts)
        .where(
            InboxEvent.status == InboxStatus.RECEIVED, InboxEvent.updated_at < now - STUCK_AFTER
        )
        .order_by(InboxEvent.id)
        .limit(limit)
    )
    return [(row_id, attempts) for row_id, attempts in (await session.execute(statement)).all()]


async def find_orphaned(
    *,
    session: AsyncSession,
    now: datetime,
    me: str | None,
    first: frozenset[str] = frozenset(),
    limit: int = RESUME_BATCH,
) -> Sequence[tuple[int, int, str]]:
    """(id, attempts, kind) of rows left `received` by an instance that is gone, kinds in
    `first` first, then oldest first. Rows out of attempts are left to `give_up_exhausted`."""
    urgent = case((InboxEvent.kind.in_(first), 0), else_=1) if first else None
    statement = (
        select(InboxEvent.id, InboxEvent.attempts, InboxEvent.kind)
        .where(
            InboxEvent.status == InboxStatus.RECEIVED,
            InboxEvent.attempts < MAX_ATTEMPTS,
            gone(InboxEvent.instance_id, now=now, me=me),
        )
        .order_by(*([urgent] if urgent is not None else []), InboxEvent.id)
        .limit(limit)
    )
    return [(row_id, n, kind) for row_id, n, kind in (await session.execute(statement)).all()]


async def give_up_exhausted(*, session: AsyncSession, now: datetime) -> int:
    """Fail rows whose attempts ran out, so they are shown instead of retried forever."""
    statement = (
        update(InboxEvent)
        .where(
            InboxEvent.status == InboxStatus.RECEIVED,
            InboxEvent.attempts >= MAX_ATTEMPTS,
            InboxEvent.updated_at < now - STUCK_AFTER,
        )
        .values(
            status=InboxStatus.FAILED,
            updated_at=now,
            last_error=f"gave up after {MAX_ATTEMPTS} attempts: the worker never finished",
        )
    )
    return (await session.execute(statement)).rowcount  # type: ignore[attr-defined,no-any-return]


async def purge_expired(*, session: AsyncSession, now: datetime) -> int:
    """Forget handled rows past the retention (failed ones stay for operators)."""
    statement = delete(InboxEvent).where(
        InboxEvent.status == InboxStatus.HANDLED, InboxEvent.received_at < now - KEY_RETENTION
    )
    return (await session.execute(statement)).rowcount  # type: ignore[attr-defined,no-any-return]


async def sweep_once(
    *, sessions: async_sessionmaker[AsyncSession], processor: InboxProcessor, clock: Clock
) -> int:
    """One pass: fail exhausted rows, forget old handled ones, re-run orphaned ones."""
    async with session_scope(sessions) as session:
        now = clock.now()
        given_up = await give_up_exhausted(session=session, now=now)
        await purge_expired(session=session, now=now)
        stuck = await find_stuck(session=session, now=now)
    if given_up:
        logger.warning("inbox: %d rows failed after %d attempts", given_up, MAX_ATTEMPTS)
    await asyncio.gather(
        *(processor.process(row_id, expected_attempts=n, late=True) for row_id, n in stuck)
    )
    return len(stuck)


async def resume_orphaned(
    *,
    sessions: async_sessionmaker[AsyncSession],
    processor: InboxProcessor,
    clock: Clock,
    me: str | None,
) -> int:
    """One pass: run again the rows of instances that are gone (see the module docstring).
    Returns once they ran, so the next pass does not find them again."""
    async with session_scope(sessions) as session:
        orphans = await find_orphaned(
            session=session, now=clock.now(), me=me, first=processor.time_critical_kinds
        )
    if orphans:
        logger.warning("inbox: resuming %d events of a stopped instance", len(orphans))
    await asyncio.gather(
        *(
            processor.process(row_id, expected_attempts=n, late=True, kind=kind)
            for row_id, n, kind in orphans
        )
    )
    return len(orphans)


async def run_sweeper(
    stop: asyncio.Event,
    *,
    sessions: async_sessionmaker[AsyncSession],
    processor: InboxProcessor,
    clock: Clock,
    interval: float = SWEEP_INTERVAL_S,
) -> None:
    """Sweep until `stop` is set; started by the app's lifespan. The sweeper is the safety
    net: one failed pass is logged and the next runs as usual."""
    sweep = partial(sweep_once, sessions=sessions, processor=processor, clock=clock)
    await every(stop, interval, sweep, name="inbox sweep")


class ResumeWatch:
    """Whether a resume pass may find new orphans (see RESUME_AT_LEAST_S)."""

    def __init__(self) -> None:
        self._live: frozenset[str] | None = None
        self._scanned_at = -math.inf
        self._full = False

    def needs_scan(self, live: frozenset[str], now: float) -> bool:
        changed = live != self._live
        return changed or self._full or now - self._scanned_at >= RESUME_AT_LEAST_S

    def scanned(self, live: frozenset[str], resumed: int, now: float) -> None:
        """Recorded once a pass ran: one that failed leaves the next to scan again."""
        self._live, self._scanned_at, self._full = live, now, resumed >= RESUME_BATCH


async def resume_when_needed(
    watch: ResumeWatch,
    *,
    sessions: async_sessionmaker[AsyncSession],
    processor: InboxProcessor,
    clock: Clock,
    me: str | None,
) -> int:
    """`resume_orphaned`, when `watch` says the pass may find something (one cheap read of
    the live instances otherwise)."""
    async with session_scope(sessions) as session:
        live = frozenset((await session.scalars(live_ids(clock.now()))).all())
    now = asyncio.get_running_loop().time()
    if not watch.needs_scan(live, now):
        return 0
    resumed = await resume_orphaned(sessions=sessions, processor=processor, clock=clock, me=me)
    watch.scanned(live, resumed, now)
    return resumed


async def run_resumer(
    stop: asyncio.Event,
    *,
    sessions: async_sessionmaker[AsyncSession],
    processor: InboxProcessor,
    clock: Clock,
    me: str | None,
    interval: float = RESUME_INTERVAL_S,
) -> None:
    """Resume gone instances' rows now (a restart's first pass) and every `interval`."""
    resume = partial(
        resume_when_needed,
        ResumeWatch(),
        sessions=sessions,
        processor=processor,
        clock=clock,
        me=me,
    )
    await every(stop, interval, resume, name="inbox resume")
