"""The run queue: at most `size` handler runs at once, earliest deadline first."""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Job:
    run: Callable[[], Awaitable[None]]
    done: asyncio.Future[None]


class RunQueue:
    """Runs jobs with at most `size` at once, earliest deadline first (a deadline is the
    time queued plus the job's slack), so a job with less slack overtakes the others, but
    never by more than the difference. Workers are tasks started on demand that end when
    the queue is empty, so there is nothing to start or stop."""

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError("need at least one worker")
        self.size = size
        self._heap: list[tuple[float, int, _Job]] = []
        self._arrivals = itertools.count()
        self._workers: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._heap)

    def submit(self, slack: float, run: Callable[[], Awaitable[None]]) -> asyncio.Future[None]:
        """Queue `run`; the future is done when it has run (whatever it raised)."""
        loop = asyncio.get_running_loop()
        job = _Job(run, loop.create_future())
        heapq.heappush(self._heap, (loop.time() + slack, next(self._arrivals), job))
        if len(self._workers) < self.size:
            self._workers.add(asyncio.create_task(self._work()))
        return job.done

    async def _work(self) -> None:
        try:
            while self._heap:
                *_, job = heapq.heappop(self._heap)
                try:
                    await job.run()
                except Exception:
                    logger.exception("dispatcher job crashed")
                finally:
                    if not job.done.done():
                        job.done.set_result(None)
        finally:
            # In the same step as the empty check: a job queued after it gets a new worker.
            self._workers.discard(cast("asyncio.Task[None]", asyncio.current_task()))

    async def drain(self) -> None:
        """Wait until every queued job has run. Cancelling the wait (a caller's timeout)
        cancels no job: asyncio.wait, unlike gather, leaves the workers running."""
        while self._workers:
            await asyncio.wait(set(self._workers))
