"""Firing: due firings render their script per target and enqueue outbox rows.

Each row's key is `schedule:{id}:{target}:{due_at}`, so a firing run twice (two
scheduler processes, a restart mid-firing) enqueues nothing twice. A firing found
longer than the misfire grace after its time is recorded `missed`, not sent late.

`fire_due` fires everything due in one call, FIRINGS_PER_TRANSACTION firings to a
transaction (PARALLEL transactions at once on PostgreSQL): they are claimed (planned →
fired) in the transaction that writes their rows, so a firing's rows still commit with
its claim, all or none. A firing that cannot be prepared (a script that no longer
renders, a message over its channel's limit) is recorded in that transaction and the
others go on; a transaction the database refuses is done again one firing per
transaction, so only the broken firing is recorded failed. Within a transaction,
targets resolve once per distinct target and cohort, and a script renders once per
distinct context (`schedules.sends.FiringBatch`): targets with the same variables get
the same text (a template drawing on `random` too).

What the capabilities add comes in as `extensions` (`app.capability.Extensions`): member
filters, context providers, and script jobs — a firing whose script has a job calls it in
the firing's transaction instead of rendering the script per target; the job writes its
own outbox rows under keys of its own (one per person or group per day), so a double
firing sends nothing twice. Schedules stay where operators set them: the job only
replaces how the firing's messages are made.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.capability import NO_EXTENSIONS, Extensions
from app.clock import Clock
from app.db import backend
from app.outbox import NewMessage, enqueue_many
from schedules.models import Firing, FiringStatus, Schedule
from schedules.sends import (
    Claimed,
    FiringBatch,
)
from scripts_library.models import Script

logger = logging.getLogger(__name__)

MISFIRE_GRACE = timedelta(minutes=10)
BATCH = 5000  # due firings read per query (ids only)
# Firings per transaction. Fewer commit their first rows sooner but pay the per-
# transaction work (claim, schedules, scripts, cohorts, targets, commit) more often;
# bench/scheduler.py (10,000 firings of 10 targets) gains nothing clear beyond 500.
FIRINGS_PER_TRANSACTION = 500
# Transactions in flight at once, per backend. On PostgreSQL one's Python work overlaps
# the server's work on another (the bench: ~30% less wall time with 2 than with 1 on two
# cores; 3 gains nothing clear). SQLite has one writer (and one pooled connection).
PARALLEL = {"postgresql": 2}
_NOTE_LIMIT = 2000


@dataclass(slots=True)
class FireReport:
    fired: int = 0
    missed: int = 0
    failed: int = 0
    enqueued: int = 0

    @property
    def did_anything(self) -> bool:
        """Whether any firing was settled (fired, missed or failed) in this call."""
        return bool(self.fired or self.missed or self.failed)

    def add(self, other: FireReport) -> None:
        self.fired += other.fired
        self.missed += other.missed
        self.failed += other.failed
        self.enqueued += other.enqueued


def _missed_note(now: datetime, due_at: datetime) -> str:
    return f"错过发送时间（晚了 {now - due_at}）"


def _failure_note(exc: Exception) -> str:
    return f"发送失败：{type(exc).__name__}: {exc}"[:_NOTE_LIMIT]


# --------------------------------------------------------------------------- one firing


async def _claim(session: AsyncSession, firing_id: int, now: datetime) -> bool:
    claimed = await session.execute(
        update(Firing)
        .where(Firing.id == firing_id, Firing.status == FiringStatus.PLANNED)
        .values(status=FiringStatus.FIRED, fired_at=now)
    )
    return bool(claimed.rowcount)  # type: ignore[attr-defined]


async def fire(
    *,
    session: AsyncSession,
    firing: Firing,
    now: datetime,
    default_tz: str,
    grace: timedelta = MISFIRE_GRACE,
    extensions: Extensions = NO_EXTENSIONS,
) -> str:
    """Fire one firing in the caller's transaction; its resulting status."""
    if not await _claim(session, firing.id, now):
        return "taken"  # another scheduler fired it
    if now - firing.due_at > grace:
        firing.status, firing.note = FiringStatus.MISSED, _missed_note(now, firing.due_at)
        return FiringStatus.MISSED
    schedule = await session.get(Schedule, firing.schedule_id)
    assert schedule is not None  # the firing's foreign key
    script = (
        await session.execute(select(Script).where(Script.key == schedule.script_key))
    ).scalar_one_or_none()
    if script is None:
        firing.status, firing.note = FiringStatus.MISSED, f"话术不存在：{schedule.script_key}"
        return FiringStatus.MISSED
    job = extensions.job_for(schedule.script_key, schedule.cohort_id)
    if job is not None and schedule.cohort_id is not None:
        firing.enqueued = await job(session, schedule.cohort_id, now)
        return FiringStatus.FIRED
    # The one firing through the batch path: rendered, checked and routed the same way.
    batch = FiringBatch(session, now, default_tz, extensions)
    claimed = Claimed(firing.id, firing.schedule_id, firing.member_id, firing.due_at)
    await batch.load([claimed])
    rows = await batch.messages(claimed, batch.plans[firing.schedule_id], script)
    await enqueue_many(session=session, rows=rows, now=now)
    firing.enqueued = len(rows)
    return FiringStatus.FIRED


@dataclass(frozen=True, slots=True)
class _Run:
    """What every firing of one `fire_due` call shares."""

    clock: Clock
    default_tz: str
    grace: timedelta
    extensions: Extensions


async def _fire_alone(
    sessions: async_sessionmaker[AsyncSession], firing_id: int, run: _Run
) -> FireReport:
    """One firing in its own transaction, its failure recorded: the careful path."""
    report = FireReport()
    try:
        async with sessions.begin() as session:
            firing = await session.get(Firing, firing_id)
            assert firing is not None
            status = await fire(
                session=session,
                firing=firing,
                now=run.clock.now(),
                default_tz=run.default_tz,
                grace=run.grace,
                extensions=run.extensions,
            )
            report.enqueued += firing.enqueued if status == FiringStatus.FIRED else 0
    except Exception as exc:
        # A script that no longer renders, a bad target: record it on the firing.
        logger.exception("firing %s failed", firing_id)
        await _record_failure(sessions, firing_id, exc, run.clock.now())
        report.failed += 1
        return report
    report.fired += status == FiringStatus.FIRED
    report.missed += status == FiringStatus.MISSED
    return report


async def _record_failure(
    sessions: async_sessionmaker[AsyncSession], firing_id: int, exc: Exception, now: datetime
) -> None:
    async with sessions.begin() as session:
        await session.execute(
            update(Firing)
            .where(Firing.id == firing_id, Firing.status == FiringStatus.PLANNED)
            .values(status=FiringStatus.MISSED, fired_at=now, note=_failure_note(exc))
        )


# --------------------------------------------------------------------------- many firings


async def _claim_many(
    session: AsyncSession, firing_ids: Sequence[int], now: datetime
) -> list[Claimed]:
    """Claim the firings still planned: planned → fired, in the caller's transaction."""
    # SKIP LOCKED (PostgreSQL; SQLite has one writer anyway): a firing another scheduler
    # holds is its to fire or record, and waiting on its locks could deadlock.
    planned = (
        select(Firing.id)
        .where(Firing.id.in_(firing_ids), Firing.status == FiringStatus.PLANNED)
        .with_for_update(skip_locked=True)
    )
    rows = await session.execute(
        update(Firing)
        .where(Firing.id.in_(planned.scalar_subquery()), Firing.status == FiringStatus.PLANNED)
        .values(status=FiringStatus.FIRED, fired_at=now)
        .returning(Firing.id, Firing.schedule_id, Firing.member_id, Firing.due_at)
        .execution_options(synchronize_session=False)
    )
    return sorted((Claimed(*row) for row in rows), key=lambda f: f.id)


async def _record(session: AsyncSession, firing_id: int, note: str) -> None:
    """A claimed firing that sent nothing: `missed`, with why."""
    await session.execute(
        update(Firing)
        .where(Firing.id == firing_id)
        .values(status=FiringStatus.MISSED, note=note)
        .execution_options(synchronize_session=False)
    )


async def _set_enqueued(session: AsyncSession, counts: dict[int, int]) -> None:
    # One UPDATE per distinct count, not per firing: a batch's firings mostly share it.
    by_count: dict[int, list[int]] = defaultdict(list)
    for firing_id, count in counts.items():
        by_count[count].append(firing_id)
    for count, firing_ids in by_count.items():
        await session.execute(
            update(Firing)
            .where(Firing.id.in_(firing_ids))
            .values(enqueued=count)
            .execution_options(synchronize_session=False)
        )


async def _fire_many(
    session: AsyncSession, firing_ids: Sequence[int], *, now: datetime, run: _Run
) -> FireReport:
    """Fire these firings in the caller's transaction, skipping any not planned any more."""
    report = FireReport()
    claimed = await _claim_many(session, firing_ids, now)
    for firing in claimed:
        metrics.SCHEDULER_LATENESS.observe(max((now - firing.due_at).total_seconds(), 0.0))
    on_time = [f for f in claimed if now - f.due_at <= run.grace]
    for late in (f for f in claimed if now - f.due_at > run.grace):
        await _record(session, late.id, _missed_note(now, late.due_at))
        report.missed += 1
    if not on_time:
        return report
    batch = FiringBatch(session, now, run.default_tz, run.extensions)
    await batch.load(on_time)
    rows: list[NewMessage] = []
    counts: dict[int, int] = {}
    by_jobs = 0  # rows script jobs wrote themselves
    for firing in on_time:
        plan = batch.plans[firing.schedule_id]  # the firing's foreign key
        script = batch.scripts.get(plan.script_key)
        if script is None:
            await _record(session, firing.id, f"话术不存在：{plan.script_key}")
            report.missed += 1
            continue
        job = run.extensions.job_for(plan.script_key, plan.cohort_id)
        if job is not None and plan.cohort_id is not None:
            counts[firing.id] = await job(session, plan.cohort_id, now)
            by_jobs += counts[firing.id]
            continue
        try:
            messages = await batch.messages(firing, plan, script)
        except SQLAlchemyError:
            raise  # the transaction may be unusable: the caller fires them one by one
        except Exception as exc:
            # A script that no longer renders, a bad target: record it on the firing.
            logger.exception("firing %s failed", firing.id)
            await _record(session, firing.id, _failure_note(exc))
            report.failed += 1
            continue
        rows.extend(messages)
        counts[firing.id] = len(messages)
    await enqueue_many(session=session, rows=rows, now=now)
    await _set_enqueued(session, counts)
    report.fired += len(counts)
    report.enqueued += len(rows) + by_jobs
    return report


async def _fire_batch(
    sessions: async_sessionmaker[AsyncSession], firing_ids: Sequence[int], run: _Run
) -> FireReport:
    try:
        async with sessions.begin() as session:
            return await _fire_many(session, firing_ids, now=run.clock.now(), run=run)
    except Exception:
        # Nothing of the batch was written: fire each alone, so one firing the database
        # refuses is recorded failed and the others go out.
        logger.exception(
            "firing %d firings together failed; firing them one by one", len(firing_ids)
        )
    report = FireReport()
    for firing_id in firing_ids:
        report.add(await _fire_alone(sessions, firing_id, run))
    return report


# --------------------------------------------------------------------------- due firings


async def due_firings(
    *,
    session: AsyncSession,
    now: datetime,
    after: tuple[datetime, int] | None = None,
    limit: int = BATCH,
) -> Sequence[tuple[datetime, int]]:
    """Due planned firings as (due_at, id), oldest first, from just after `after`."""
    query = select(Firing.due_at, Firing.id).where(
        Firing.status == FiringStatus.PLANNED, Firing.due_at <= now
    )
    if after is not None:
        due_at, firing_id = after
        query = query.where(
            or_(Firing.due_at > due_at, and_(Firing.due_at == due_at, Firing.id > firing_id))
        )
    rows = await session.execute(query.order_by(Firing.due_at, Firing.id).limit(limit))
    return [(due_at, firing_id) for due_at, firing_id in rows]


def _chunks(ids: Sequence[int], size: int) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


async def _fire_page(
    sessions: async_sessionmaker[AsyncSession], firing_ids: Sequence[int], run: _Run
) -> FireReport:
    """Fire these, FIRINGS_PER_TRANSACTION to a transaction, PARALLEL transactions at once."""
    report = FireReport()
    chunks = _chunks(firing_ids, FIRINGS_PER_TRANSACTION)

    async def work() -> None:
        for chunk in chunks:  # shared by the workers: each takes the next one left
            report.add(await _fire_batch(sessions, chunk, run))

    async with asyncio.TaskGroup() as workers:
        for _ in range(PARALLEL.get(backend(sessions), 1)):
            workers.create_task(work())
    return report


async def fire_due(
    *,
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    default_tz: str,
    grace: timedelta = MISFIRE_GRACE,
    extensions: Extensions = NO_EXTENSIONS,
) -> FireReport:
    """Fire everything due now (see the module docstring); `extensions`: the capabilities'
    jobs, filters and providers (none by default: the scheduler on its own)."""
    run = _Run(clock, default_tz, grace, extensions)
    report = FireReport()
    now = clock.now()  # what falls due meanwhile is the next tick's
    after: tuple[datetime, int] | None = None
    while True:
        # Paged by (due_at, id), not by status: a firing left planned (another scheduler
        # holds it) is passed over, not read again and again.
        async with sessions() as session:
            page = await due_firings(session=session, now=now, after=after)
        ids = [firing_id for _, firing_id in page]
        report.add(await _fire_page(sessions, ids, run))
        if len(page) < BATCH:
            return report
        after = page[-1]
