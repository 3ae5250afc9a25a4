"""The inbox: every callback recorded once under its dedupe key, and the queue
that handlers are run from (ARCHITECTURE §1, rules 1–2).

A row goes `received → handled | failed`. Handlers run after WeCom has its
answer; if the process dies first, the sweeper finds the row still `received`
and runs it again, a bounded number of times.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.background import sleep_or_stop
from app.clock import Clock
from app.db import dialect_insert, session_scope
from app.models import InboxEvent, InboxStatus
from app.wecom.events import WeComEvent

# How long handled rows (and so their dedupe keys) are kept. Callbacks signed
# longer ago than this are refused at intake: their key may be gone, so a
# replay could no longer be recognised as one.
KEY_RETENTION = timedelta(days=7)
# A row still `received` this long after its last attempt started is presumed
# orphaned by a crash (handlers finish in seconds).
STUCK_AFTER = timedelta(minutes=2)
MAX_ATTEMPTS = 5
_ERROR_LIMIT = 2000
SWEEP_INTERVAL_S = 30.0

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A row claimed for one run of its handlers."""

    id: int
    dedupe_key: str
    body: str
    attempts: int
    received_at: datetime


class InboxProcessor(Protocol):
    """Runs the handlers for one inbox row (implemented by `bots.dispatch`)."""

    async def process(self, row_id: int, *, expected_attempts: int, late: bool) -> None: ...


async def claim(
    *, session: AsyncSession, event: WeComEvent, body: str, now: datetime
) -> int | None:
    """Insert the event unless its key is known; the new row's id, or None for a duplicate."""
    insert = dialect_insert(session)
    statement = (
        insert(InboxEvent)
        .values(
            dedupe_key=event.dedupe_key,
            kind=event.kind,
            body=body,
            event_time=event.created_at or now,
            status=InboxStatus.RECEIVED,
            attempts=0,
            received_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(InboxEvent.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def begin_attempt(
    *, session: AsyncSession, row_id: int, expected_attempts: int, now: datetime
) -> Attempt | None:
    """Count one more attempt, unless another worker already took this row (then None)."""
    statement = (
        update(InboxEvent)
        .where(
            InboxEvent.id == row_id,
            InboxEvent.status == InboxStatus.RECEIVED,
            InboxEvent.attempts == expected_attempts,
        )
        .values(attempts=InboxEvent.attempts + 1, updated_at=now)
        .returning(
            InboxEvent.id,
            InboxEvent.dedupe_key,
            InboxEvent.body,
            InboxEvent.attempts,
            InboxEvent.received_at,
        )
    )
    row = (await session.execute(statement)).one_or_none()
    return Attempt(*row) if row else None


async def mark_handled(*, session: AsyncSession, row_id: int, now: datetime) -> None:
    await session.execute(
        update(InboxEvent)
        .where(InboxEvent.id == row_id)
        .values(status=InboxStatus.HANDLED, last_error=None, updated_at=now)
    )


async def mark_failed(*, session: AsyncSession, row_id: int, error: str, now: datetime) -> None:
    await session.execute(
        update(InboxEvent)
        .where(InboxEvent.id == row_id)
        .values(status=InboxStatus.FAILED, last_error=error[:_ERROR_LIMIT], updated_at=now)
    )


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
    for row_id, attempts in stuck:
        await processor.process(row_id, expected_attempts=attempts, late=True)
    return len(stuck)


async def run_sweeper(
    stop: asyncio.Event,
    *,
    sessions: async_sessionmaker[AsyncSession],
    processor: InboxProcessor,
    clock: Clock,
    interval: float = SWEEP_INTERVAL_S,
) -> None:
    """Sweep until `stop` is set; started by the app's lifespan."""
    while True:
        try:
            await sweep_once(sessions=sessions, processor=processor, clock=clock)
        except Exception:
            # The sweeper is the safety net; one bad pass must not end it.
            logger.exception("inbox sweep failed")
        if await sleep_or_stop(stop, interval):
            return
