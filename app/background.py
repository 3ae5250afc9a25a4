"""Background loops (the inbox sweeper, the outbox sender) that stop between rounds.

Cancelling a loop in the middle of a database call can leave a connection in use
while the engine is disposed; asking it to stop lets the round finish first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

STOP_GRACE_S = 10.0

logger = logging.getLogger(__name__)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep, unless asked to stop first; True when asked to stop."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=max(seconds, 0.0))
    return stop.is_set()


async def every(
    stop: asyncio.Event, seconds: float, job: Callable[[], Awaitable[object]], *, name: str
) -> None:
    """Run `job` now and then every `seconds` until `stop` is set; a failed pass is logged
    and the next one runs as usual (these jobs catch up on what a failed pass left)."""
    while True:
        try:
            await job()
        except Exception:
            logger.exception("%s failed", name)
        if await sleep_or_stop(stop, seconds):
            return


class Loops:
    """Started loops and the event that stops them, for the app's lifespan."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self, loop: Callable[[asyncio.Event], Awaitable[None]]) -> None:
        self._tasks.append(asyncio.ensure_future(loop(self.stop)))

    async def close(self) -> None:
        self.stop.set()
        if not self._tasks:
            return
        _done, late = await asyncio.wait(self._tasks, timeout=STOP_GRACE_S)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
