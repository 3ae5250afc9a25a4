"""A probe of the event loop: how long it went without running a task while a block ran.

"Nothing blocks the loop for more than 100 ms" is a behaviour: a request that renders a
runaway template on the loop stalls every other request, and this probe sees that stall.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

TICK_S = 0.005
MAX_LAG_S = 0.1  # the service's rule: nothing stalls other requests longer


@dataclass
class LoopLag:
    worst: float = 0.0  # seconds the loop was late to run the probe, at most
    last: float = 0.0

    def see(self, now: float) -> None:
        self.worst = max(self.worst, now - self.last - TICK_S)
        self.last = now

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.last = loop.time()
        while True:
            await asyncio.sleep(TICK_S)
            self.see(loop.time())


@contextlib.asynccontextmanager
async def loop_lag() -> AsyncIterator[LoopLag]:
    """`async with loop_lag() as lag: …` then `lag.worst` is the longest stall seen."""
    lag = LoopLag()
    probe = asyncio.create_task(lag.run())
    await asyncio.sleep(0)  # the probe starts its clock before the block runs
    try:
        yield lag
    finally:
        lag.see(asyncio.get_running_loop().time())  # a stall at the very end counts too
        probe.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await probe
