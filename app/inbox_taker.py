"""Handlers in their own process (`CAMPBOT_HANDLERS=worker`): intake only records, workers run.

With the setting, `campbot serve` records each callback and answers at once: it runs no
handler (members' texts then get their answers as app messages, never passive replies), and
registers as an `intake` instance. `campbot worker` processes take the rows such instances
recorded — each row by exactly one worker, its first attempt already counted by intake —
and run them through their dispatcher. A worker that dies leaves its rows to the resumer of
another (`app.inbox_recovery`), as a server that dies does; so do the rows of an intake
instance that dies before any worker took them.

Why: a callback costs intake ~0.16 ms of CPU and its handlers more than twice that. In one
process every handler run takes the event loop from intake; in another, started `nice`, it
takes only the CPU intake leaves.
"""

from __future__ import annotations

import asyncio
import logging
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.background import sleep_or_stop
from app.db import session_scope
from app.inbox import ATTEMPT_COLUMNS, Attempt, InboxProcessor
from app.models import InboxEvent, InboxStatus, Instance

INTAKE_KIND = "intake"  # the instance kind of a server that runs no handlers
WORKER_KIND = "worker"
# Rows a worker keeps queued: enough that its dispatcher never waits for the next take,
# few enough that a worker that dies leaves little for the resumer.
TAKE_AHEAD = 256
# How long an idle worker waits before it looks again: the lag an event may have beyond
# its run (a welcome has 20 s).
IDLE_POLL_S = 0.05
GRACE = timedelta(milliseconds=200)
CATCH_UP_S = 1.0
RETRY_S = 1.0  # after a failed take (the database away): one log line a second, not twenty

logger = logging.getLogger(__name__)


@dataclass
class Cursor:
    """Where a worker's next take starts reading (`take`'s `since`).

    A handled row leaves a dead `received` entry in the inbox's status index until vacuum,
    and under a burst tens of thousands pile up in front of the rows still waiting: a take
    that read from the oldest cost ~50 µs of PostgreSQL's CPU per row taken. So a take
    starts GRACE before the newest row taken so far; GRACE covers rows whose group commit
    came later than a newer row's. Once every CATCH_UP_S a take reads from the oldest, for
    the rows that came later still (a stalled commit, an intake server whose clock is
    behind)."""

    since: datetime | None = None
    caught_up_at: float = -math.inf

    def start(self, now: float) -> datetime | None:
        """`since` for a take at monotonic time `now` (None: from the oldest)."""
        if now - self.caught_up_at >= CATCH_UP_S:
            self.caught_up_at = now
            return None
        return self.since

    def advance(self, taken: list[Attempt]) -> None:
        newest = max(attempt.received_at for attempt in taken) - GRACE
        if self.since is None or newest > self.since:
            self.since = newest


async def take(
    *, session: AsyncSession, me: str, limit: int, since: datetime | None = None
) -> list[Attempt]:
    """Make up to `limit` rows intake instances recorded this worker's, oldest first, of
    those received at `since` or later (`Cursor`).

    Another worker's concurrent take gets other rows: PostgreSQL skips the rows this one
    locked; on SQLite (one writer at a time) the update checks again that each row is still
    intake's, and returns only those it took."""
    intake = list((await session.scalars(_INTAKE)).all())
    if not intake:
        return []
    waiting = [InboxEvent.status == InboxStatus.RECEIVED, InboxEvent.instance_id.in_(intake)]
    if since is not None:
        waiting.append(InboxEvent.received_at >= since)
    candidates = (
        select(InboxEvent.id)
        .where(*waiting)
        .order_by(InboxEvent.received_at, InboxEvent.id)  # ix_inbox_status_received_at
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    ids = list((await session.scalars(candidates)).all())
    if not ids:
        return []
    statement = (
        update(InboxEvent)
        .where(
            InboxEvent.id.in_(ids),
            InboxEvent.status == InboxStatus.RECEIVED,
            InboxEvent.instance_id.in_(intake),
        )
        .values(instance_id=me)
        .returning(*ATTEMPT_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    rows = (await session.execute(statement)).all()
    return sorted((Attempt(*row) for row in rows), key=lambda attempt: attempt.id)


_INTAKE = select(Instance.id).where(Instance.kind == INTAKE_KIND)


async def run_taker(
    stop: asyncio.Event,
    *,
    sessions: async_sessionmaker[AsyncSession],
    processor: InboxProcessor,
    me: str,
) -> None:
    """Keep the dispatcher's queue fed with intake's rows until `stop` is set."""
    running: set[asyncio.Task[None]] = set()  # process_claimed follows its run a while
    cursor = Cursor()
    loop = asyncio.get_running_loop()
    while not stop.is_set():
        room = TAKE_AHEAD - processor.waiting
        taken: list[Attempt] = []
        if room >= TAKE_AHEAD // 2:  # a take costs a few statements: take many at once
            try:
                async with session_scope(sessions) as session:
                    since = cursor.start(loop.time())
                    taken = await take(session=session, me=me, limit=room, since=since)
            except Exception:
                logger.exception("inbox: taking intake's rows failed; again in %.0f s", RETRY_S)
                if await sleep_or_stop(stop, RETRY_S):
                    return
                continue
        for attempt in taken:
            task = asyncio.ensure_future(processor.process_claimed(attempt))
            running.add(task)
            task.add_done_callback(running.discard)
        if taken:
            cursor.advance(taken)
            await asyncio.sleep(0)  # the runs start before the next look
        elif await sleep_or_stop(stop, IDLE_POLL_S):
            return
