"""`campbot worker`: runs the handlers of the events that `CAMPBOT_HANDLERS=worker` servers
record (`app.inbox_taker`), and keeps their inbox (the resumer and the sweeper).

It sends nothing on its own (the servers' senders do), leads no schedule and serves no
HTTP but, when asked (`metrics_at`), its own Prometheus metrics on a port of their own:
handler runs and their durations are counted where they run. There is no token on that
port, so bind it where only Prometheus reaches; the database's gauges stay the servers'
`/metrics`. The capabilities come from the composition root (`app.main.CAPABILITIES`, by
the CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from functools import partial

import httpx
import prometheus_client
import uvloop
from sqlalchemy.ext.asyncio import AsyncEngine

from app.capability import Capability, Extensions, event_routers
from app.clock import Clock, SystemClock
from app.db import create_engine
from app.inbox_taker import WORKER_KIND, run_taker
from app.instances import Identity
from app.main import build_runtime, enter_running, start_loops
from app.runtime import wecom_http
from app.settings import Settings
from bots.dispatch import Router

logger = logging.getLogger(__name__)


def _serve_metrics(host: str, port: int) -> Callable[[], None]:
    """prometheus-client's server (a thread) on `host:port`; returns how to stop it."""
    server, thread = prometheus_client.start_http_server(port, addr=host)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop


async def run_worker(
    stop: asyncio.Event,
    *,
    settings: Settings,
    capabilities: Sequence[Capability[Router]],
    clock: Clock | None = None,
    engine: AsyncEngine | None = None,
    wecom_transport: httpx.AsyncBaseTransport | None = None,
    heartbeat: bool = True,
    metrics_at: tuple[str, int] | None = None,
) -> None:
    """Run until `stop` is set, then let the runs in flight finish (tests inject the clock,
    the engine and the transport that reaches WeCom, as for `create_app`). `metrics_at`:
    (host, port) to serve this process's metrics on."""
    async with contextlib.AsyncExitStack() as stack:
        if metrics_at is not None:
            stack.callback(_serve_metrics(*metrics_at))
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
        loops = await enter_running(stack, runtime, identity, heartbeat=heartbeat)
        loops.start(
            partial(
                run_taker, sessions=runtime.sessions, processor=runtime.processor, me=identity.id
            )
        )
        start_loops(runtime, loops, sweeper=True, sender=False, scheduler=False)
        logger.info("CampBot worker started", extra={"instance": identity.id})
        await stop.wait()


def run_until_signalled(
    *,
    settings: Settings,
    capabilities: Sequence[Capability[Router]],
    metrics_at: tuple[str, int] | None,
) -> None:
    """`campbot worker`: run on uvloop (as uvicorn runs the servers) until SIGINT or SIGTERM."""

    async def until_signalled() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await run_worker(stop, settings=settings, capabilities=capabilities, metrics_at=metrics_at)

    uvloop.run(until_signalled())
