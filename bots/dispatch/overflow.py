"""Fresh runs past the run queue's bound (`dispatcher.MAX_QUEUED`): only their row ids wait
in memory, in arrival order; the rows themselves, still `received`, are read back when the
queue has room again. So an overload that lasts costs a few bytes per event, not the few
kilobytes of a queued run, and nothing waits for the sweeper."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import inbox
from app.db import session_scope
from app.wecom.events import WeComEvent, parse_event
from bots.dispatch import outcomes

Resubmit = Callable[[inbox.Attempt, WeComEvent], object]


class Overflow:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], *, chunk: int) -> None:
        self._sessions = sessions
        self._chunk = chunk  # rows read back at once
        self._ids: deque[int] = deque()
        self._reading: asyncio.Task[None] | None = None

    def __len__(self) -> int:
        return len(self._ids)

    def defer(self, row_id: int) -> None:
        self._ids.append(row_id)

    def read_back(self, resubmit: Resubmit) -> None:
        """Read the longest deferred rows back (a chunk), each handed to `resubmit`, unless
        a read is under way."""
        if self._ids and self._reading is None:
            self._reading = asyncio.create_task(self._read(resubmit))

    async def wait(self) -> None:
        """Until no read is under way (a drain; cancelling the wait cancels no read)."""
        while self._reading is not None:
            await asyncio.shield(self._reading)

    async def _read(self, resubmit: Resubmit) -> None:
        ids = [self._ids.popleft() for _ in range(min(self._chunk, len(self._ids)))]
        try:
            async with session_scope(self._sessions) as session:
                # Still `received`: another worker (the sweeper) may have run some meanwhile.
                attempts = await inbox.received_attempts(session=session, ids=ids)
        except Exception as exc:
            outcomes.log_error(f"{len(ids)} deferred inbox rows", exc, "left to the sweeper")
            return
        finally:
            self._reading = None
        for attempt in attempts:
            resubmit(attempt, parse_event(attempt.body))
