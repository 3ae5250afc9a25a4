"""Fresh runs in batches: the runs waiting in the run queue, so that one worker can take
several of them into one transaction (`Dispatcher._run_fresh`), and that transaction. Under
a burst it shares the commit, the `handled` marks and the session among the batch's events,
as intake's group commit does for claims."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import inbox
from app.wecom.events import WeComEvent
from app.wecom.passive import PassiveReply
from bots.dispatch import outcomes
from bots.dispatch.router import Context, Router, run_handlers

# Fresh runs one worker takes into one transaction at most: enough to share a commit among
# a burst's events, few enough that the batch holds SQLite's write lock for milliseconds.
MAX_BATCH = 16


@dataclass(eq=False, slots=True)
class FreshRun:
    """A claimed row's first run, and the future its caller awaits (done once it ran,
    alone or in a batch)."""

    attempt: inbox.Attempt
    event: WeComEvent
    passive: PassiveReply | None
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)


class FreshRuns:
    """The fresh runs queued and not started, in arrival order."""

    def __init__(self) -> None:
        self._waiting: dict[FreshRun, None] = {}  # an ordered set (runs hash by identity)
        self.replying = 0  # waiting runs whose callback waits for a passive reply

    def __len__(self) -> int:
        return len(self._waiting)

    def add(
        self, attempt: inbox.Attempt, event: WeComEvent, passive: PassiveReply | None
    ) -> FreshRun:
        run = FreshRun(attempt, event, passive)
        self._waiting[run] = None
        self.replying += passive is not None
        return run

    def take(self, first: FreshRun, limit: int) -> list[FreshRun]:
        """`first` (the run the queue chose) and up to `limit - 1` other waiting runs, the
        longest waiting first; empty when `first` was already taken into another batch."""
        if first not in self._waiting:
            return []
        del self._waiting[first]
        batch = [first, *itertools.islice(self._waiting, limit - 1)]
        for run in batch[1:]:
            del self._waiting[run]
        self.replying -= sum(run.passive is not None for run in batch)
        return batch


Ran = list[tuple[FreshRun, Context[WeComEvent] | None]]


async def handle(
    runs: list[FreshRun],
    *,
    sessions: async_sessionmaker[AsyncSession],
    routers: Iterable[Router],
    now: datetime,
    context: Callable[[AsyncSession, FreshRun], Context[WeComEvent]],
) -> Ran:
    """The runs' handlers, one event after another, and one commit; each run with its
    context (None: its row was taken over by another worker, nothing ran). Raises whatever
    a handler or the database raised, with nothing committed."""
    done: Ran = []
    names: list[list[str]] = []
    async with sessions() as session:
        owned = await inbox.mark_handled_many(
            session=session,
            attempts=[(run.attempt.id, run.attempt.attempts) for run in runs],
            now=now,
        )
        for run in runs:
            if run.attempt.id not in owned:
                done.append((run, None))
                continue
            ctx = context(session, run)
            names.append(await run_handlers(ctx, routers))
            # The next event reads afresh, as it would alone: nothing of this one's objects
            # is taken for current (a Core UPDATE leaves loaded objects stale).
            await session.flush()
            session.expire_all()
            done.append((run, ctx))
        await session.commit()
    # Counted once committed: a batch that rolls back is run again alone, and counted then.
    committed = (run for run, ctx in done if ctx is not None)
    for run, ran in zip(committed, names, strict=True):
        outcomes.handled(run.attempt, ran)
    for run, result in done:
        if result is None:
            outcomes.taken(run.attempt)
    return done
