"""`campbot worker`: runs the handlers of the events that `CAMPBOT_HANDLERS=worker` servers
record (`app.inbox_taker`), and keeps their inbox (the resumer and the sweeper).

It sends nothing on its own (the servers' senders do), serves no HTTP and leads no schedule.
The capabilities come from the composition root (`app.main.CAPABILITIES`, by the CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from functools import partial

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from app import instances
from app.background import Loops
from app.capability import Capability, Extensions, event_routers
from app.clock import Clock, SystemClock
from app.db import create_engine
from app.inbox_taker import WORKER_KIND, run_taker
from app.instances import Identity
from app.main import build_runtime, drain_handlers, start_loops
from app.runtime import wecom_http
from app.settings import Settings
from bots.dispatch import Router

logger = logging.getLogger(__name__)


async def run_worker(
    stop: asyncio.Event,
    *,
    settings: Settings,
    capabilities: Sequence[Capability[Router]],
    clock: Clock | None = None,
    engine: AsyncEngine | None = None,
    wecom_transport: httpx.AsyncBaseTransport | None = None,
    heartbeat: bool = True,
) -> None:
    """Run until `stop` is set, then let the runs in flight finish (tests inject the clock,
    the engine and the transport that reaches WeCom, as for `create_app`)."""
    async with contextlib.AsyncExitStack() as stack:
        http = await stack.enter_async_context(wecom_http(settings, wecom_transport))
        if engine is None:
            engine = create_engine(settings.database_url)
            stack.push_async_callback(engine.dispose)
        identity = Identity.of_this_process(WORKER_KIND)
        runtime = build_runtime(
            settings=settings,
            clock=clock or SystemClock(),
            engine=engine,
            routers=event_routers(capabilities),
            http=http,
            identity=identity,
            extensions=Extensions.of(capabilities, settings=settings),
        )
        await stack.enter_async_context(
            instances.running(
                sessions=runtime.sessions,
                identity=identity,
                clock=runtime.clock,
                heartbeat=heartbeat,
            )
        )
        stack.push_async_callback(drain_handlers, runtime.processor)
        loops = Loops()
        stack.push_async_callback(loops.close)
        take = partial(run_taker, sessions=runtime.sessions, processor=runtime.processor)
        loops.start(partial(take, me=identity.id))
        start_loops(runtime, loops, sweeper=True, sender=False, scheduler=False)
        logger.info("CampBot worker started", extra={"instance": identity.id})
        await stop.wait()
