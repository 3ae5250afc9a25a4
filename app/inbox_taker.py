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
RETRY_S = 1.0  # after a failed take (the database away): one log line a second, not twenty

logger = logging.getLogger(__name__)


async def take(*, session: AsyncSession, me: str, limit: int) -> list[Attempt]:
    """Make up to `limit` rows intake instances recorded this worker's, oldest first.
    Another worker's concurrent take gets other rows: PostgreSQL skips the rows it locked;
    SQLite runs one writer at a time, and the outer condition is checked again under it."""
    intake = select(Instance.id).where(Instance.kind == INTAKE_KIND)
    from_intake = InboxEvent.instance_id.in_(intake)
    waiting = InboxEvent.status == InboxStatus.RECEIVED
    candidates = select(InboxEvent.id).where(waiting, from_intake).order_by(InboxEvent.id)
    candidates = candidates.limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    statement = (
        update(InboxEvent)
        .where(InboxEvent.id.in_(candidates), waiting, from_intake)
        .values(instance_id=me)
        .returning(*ATTEMPT_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    rows = (await session.execute(statement)).all()
    return sorted((Attempt(*row) for row in rows), key=lambda attempt: attempt.id)


async def run_taker(
    stop: asyncio.Event,
    *,
    sessions: async_sessionmaker[AsyncSession],
    processor: InboxProcessor,
    me: str,
) -> None:
    """Keep the dispatcher's queue fed with intake's rows until `stop` is set."""
    running: set[asyncio.Task[None]] = set()  # process_claimed follows its run a while
    while not stop.is_set():
        room = TAKE_AHEAD - processor.waiting
        taken: list[Attempt] = []
        if room >= TAKE_AHEAD // 2:  # a take is one statement: take many at once
            try:
                async with session_scope(sessions) as session:
                    taken = await take(session=session, me=me, limit=room)
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
            await asyncio.sleep(0)  # the runs start before the next look
        elif await sleep_or_stop(stop, IDLE_POLL_S):
            return
