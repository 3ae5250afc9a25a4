"""The ASGI app: `uvicorn app.main:app`, and the composition root.

`CAPABILITIES` lists what the domain packages contribute (`app.capability.Capability`), in
precedence order; `create_app()` hands each part to its consumer: routers to the app, event
routers and cohort hooks to the dispatcher, script jobs, member filters and context providers
to the scheduler (`Extensions`, kept on the Runtime), loops to the lifespan, which also
starts the inbox sweeper and the sender. With `app.cli`, the only modules of `app` that
import `bots`, `schedules` or `scripts_library`. Tests call `create_app` with their own
settings, clock and engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from functools import partial

import httpx
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy import make_url
from sqlalchemy.ext.asyncio import AsyncEngine

from app import instances
from app.admin import api as admin_api
from app.admin import console as admin_console
from app.api import api_router
from app.api.access_log import FastAPIWithAccessLog
from app.api.admin.throttle import AuthThrottle
from app.api.callback_asgi import CallbackLane
from app.api.h5.headers import H5Headers
from app.background import Loops
from app.capability import (
    NO_EXTENSIONS,
    Capability,
    CohortListener,
    Extensions,
    event_routers,
)
from app.channels.deliver import ChannelDeliverer
from app.channels.mass_send import run_mass_send_sync
from app.clock import Clock, SystemClock
from app.console.mount import mount as mount_console
from app.db import backend, create_engine, create_sessionmaker
from app.first_run import DEMO_USERNAME, SANDBOX_MOUNT, demo_login, first_run, wecom_unconfigured
from app.inbox import InboxProcessor
from app.inbox_recovery import run_resumer, run_sweeper
from app.inbox_taker import INTAKE_KIND
from app.instances import Identity
from app.logging import configure_logging
from app.runtime import Runtime, callback_crypto, wecom_client, wecom_http
from app.sender import Sender
from app.settings import Settings, describe_settings_error, get_settings
from bots import checkin, group_welcome, membership, qa, sop, stats, student_page, welcome, xibao
from bots.dispatch import Dispatcher, Router
from schedules import api as schedules_api
from schedules import console_calendar as schedules_console
from schedules.planner import replan_on_change
from schedules.scheduler import run_scheduler
from scripts_library import api as scripts_api
from scripts_library import console as scripts_console
from scripts_library import console_versions as scripts_versions
from scripts_library.loader import seed_default_pack
from scripts_library.trial import TrialPool

logger = logging.getLogger(__name__)

SHUTDOWN_GRACE_S = 5.0

# The script library's and the timetable's parts, registered as a capability's are.
SCRIPTS: Capability[Router] = Capability(
    name="scripts_library",
    admin_routers=(scripts_api.router,),
    console_pages=(scripts_versions.PAGES, scripts_console.PAGES),
)
SCHEDULES: Capability[Router] = Capability(
    name="schedules",
    admin_routers=(schedules_api.router,),
    cohort_hooks=(CohortListener("replan", replan_on_change),),
    console_pages=schedules_console.PAGES,
)
# Order = precedence: event handlers of one priority run in this order, routes match in it.
CAPABILITIES: tuple[Capability[Router], ...] = (
    SCHEDULES,
    SCRIPTS,
    membership.capability,
    welcome.capability,
    group_welcome.capability,
    checkin.capability,
    student_page.capability,
    qa.capability,
    xibao.capability,
    sop.capability,
    stats.capability,
)


class StartupRefused(RuntimeError):
    """Settings that must be fixed before CampBot can start."""


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        raise StartupRefused("CampBot cannot start:\n" + describe_settings_error(exc)) from None


def build_runtime(
    *,
    settings: Settings,
    clock: Clock,
    engine: AsyncEngine,
    routers: Iterable[Router],
    http: httpx.AsyncClient,
    identity: Identity | None = None,
    extensions: Extensions = NO_EXTENSIONS,
) -> Runtime:
    sessions = create_sessionmaker(engine)
    wecom = wecom_client(settings, http=http, sessions=sessions, clock=clock)
    instance = identity.id if identity else None
    sender = (
        Sender(sessions=sessions, deliver=ChannelDeliverer(wecom), clock=clock, instance=instance)
        if wecom
        else None
    )
    dispatcher = Dispatcher(
        routers=routers,
        sessions=sessions,
        settings=settings,
        clock=clock,
        outbound=sender,
        wecom=wecom,
        cohort_hooks=tuple(extensions.cohort_hooks.values()),
        instance=instance,
    )
    return Runtime(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        processor=dispatcher,
        crypto=callback_crypto(settings),
        wecom=wecom,
        sender=sender,
        identity=identity,
        extensions=extensions,
    )


def start_loops(
    runtime: Runtime, loops: Loops, *, sweeper: bool, sender: bool, scheduler: bool
) -> None:
    if scheduler:
        loops.start(
            partial(
                run_scheduler,
                engine=runtime.engine,
                sessions=runtime.sessions,
                clock=runtime.clock,
                default_tz=runtime.settings.campbot_timezone,
                extensions=runtime.extensions,
                instance=runtime.identity.id if runtime.identity else None,
            )
        )
    if sweeper:
        loops.start(
            partial(
                run_resumer,
                sessions=runtime.sessions,
                processor=runtime.processor,
                clock=runtime.clock,
                me=runtime.identity.id if runtime.identity else None,
            )
        )
        loops.start(
            partial(
                run_sweeper,
                sessions=runtime.sessions,
                processor=runtime.processor,
                clock=runtime.clock,
            )
        )
    if sender and runtime.sender is not None and runtime.wecom is not None:
        loops.start(runtime.sender.run_forever)
        for loop in runtime.extensions.loops.values():  # the capabilities' own
            loops.start(
                partial(loop, sessions=runtime.sessions, wecom=runtime.wecom, clock=runtime.clock)
            )
        loops.start(
            partial(
                run_mass_send_sync,
                sessions=runtime.sessions,
                client=runtime.wecom,
                clock=runtime.clock,
                rule=runtime.extensions.routing,
            )
        )


def create_app(
    *,
    settings: Settings | None = None,
    clock: Clock | None = None,
    engine: AsyncEngine | None = None,
    capabilities: Sequence[Capability[Router]] = CAPABILITIES,
    routers: Iterable[Router] | None = None,
    wecom_transport: httpx.AsyncBaseTransport | None = None,
    sweeper: bool = True,
    scheduler: bool = True,
    sender: bool = True,
    heartbeat: bool = True,
    sandbox_when_unconfigured: bool = False,
    script_trials: TrialPool | None = None,
    sidebar_harness: bool = False,
) -> FastAPI:
    """The app; tests inject the clock, the engine and the transport that reaches WeCom,
    and may give the event routers instead of the capabilities' (`routers`).
    `heartbeat=False` registers the instance without beating (`app.instances`).
    `sandbox_when_unconfigured`: with no WECOM_* setting at all, run against the built-in
    sandbox (`app.first_run`), as a newcomer's first `./run serve` does. Logging is set up
    here (once; `app.logging`), so `uvicorn app.main:app` logs as `campbot serve` does.
    `script_trials`: the worker processes scripts are tried in when saved or previewed (the
    app starts and stops its own without; tests share one, as its workers take a while to
    start). `sidebar_harness`: serve the staff sidebar's fake `ww` (tests; honoured only with
    a `wecom_transport`, never against the real WeCom — the sandbox first run has it anyway)."""
    configure_logging()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or load_settings()
        transport = wecom_transport
        sandboxed = sandbox_when_unconfigured and wecom_unconfigured(resolved)
        if sandboxed:
            sandbox = first_run(resolved)
            resolved, transport = sandbox.settings, sandbox.transport()
            app.mount(SANDBOX_MOUNT, sandbox.app)
            app.state.sandbox = sandbox.state
            logger.warning(
                "no WECOM_* settings: running against the built-in WeCom sandbox; what WeCom "
                "would have received: %s/sandbox/messages",
                SANDBOX_MOUNT,
            )
        async with contextlib.AsyncExitStack() as stack:
            http = await stack.enter_async_context(wecom_http(resolved, transport))
            if engine is None:
                own_engine = create_engine(resolved.database_url)
                stack.push_async_callback(own_engine.dispose)
            here = resolved.handlers_here
            identity = Identity.of_this_process("server" if here else INTAKE_KIND)
            runtime = build_runtime(
                settings=resolved,
                clock=clock or SystemClock(),
                engine=engine or own_engine,
                routers=event_routers(capabilities) if routers is None else routers,
                http=http,
                identity=identity,
                extensions=Extensions.of(capabilities, settings=resolved),
            )
            app.state.runtime = runtime
            app.state.script_trials = script_trials or _own_trials(stack)
            if sandboxed:
                await _seed_scripts(runtime)
                await _demo_login(runtime)
            loops = await enter_running(stack, runtime, identity, heartbeat=heartbeat)
            _warn_unconfigured(runtime)
            # Without handlers here, the workers resume and sweep the inbox.
            start_loops(
                runtime, loops, sweeper=sweeper and here, sender=sender, scheduler=scheduler
            )
            _log_started(runtime, sandboxed=sandboxed)
            yield

    app = FastAPIWithAccessLog(title="CampBot 训练营助手", lifespan=lifespan)
    app.state.admin_throttle = AuthThrottle()
    app.state.sidebar_harness = sidebar_harness and wecom_transport is not None
    app.include_router(api_router)
    app.include_router(admin_api.router, prefix="/admin/api")
    # The capabilities' admin resources authenticate like every /admin/api one; their public
    # routes (the students' H5 pages) are included as they are.
    for admin in (r for capability in capabilities for r in capability.admin_routers):
        app.include_router(admin, prefix="/admin/api")
    for public in (r for capability in capabilities for r in capability.public_routers):
        app.include_router(public)
    # The operators' console: the platform's pages, then the capabilities', in their order.
    mount_console(app, (*admin_console.PAGES, *(p for c in capabilities for p in c.console_pages)))
    app.add_middleware(H5Headers)  # every /h5/ answer, the framework's own included
    app.add_middleware(CallbackLane)  # outermost: the hot path skips the framework
    return app


def _own_trials(stack: contextlib.AsyncExitStack) -> TrialPool:
    trials = TrialPool()
    trials.start()  # a worker starts now, so the first save does not wait for one
    stack.callback(trials.close)
    return trials


async def _seed_scripts(runtime: Runtime) -> None:
    """A first run starts with the built-in 话术库, so the welcome and the daily pushes work."""
    async with runtime.sessions.begin() as session:
        report = await seed_default_pack(session=session, now=runtime.clock.now())
    if report is not None:
        logger.info("first run: imported %d scripts of the built-in pack", len(report.created))


async def _demo_login(runtime: Runtime) -> None:
    """A first run's console login, printed once (the password is kept only as a hash)."""
    async with runtime.sessions.begin() as session:
        password = await demo_login(session=session, now=runtime.clock.now())
    if password is not None:
        logger.warning(
            "运营后台：%s/ 演示账号 %s 密码 %s（首次运行自动创建；"
            "campbot users set-password %s 可重设）",
            runtime.settings.public_base_url,
            DEMO_USERNAME,
            password,
            DEMO_USERNAME,
        )


async def enter_running(
    stack: contextlib.AsyncExitStack, runtime: Runtime, identity: Identity, *, heartbeat: bool
) -> Loops:
    """Register the instance (before any work is taken; its heartbeat kept until the
    handlers drained), then the loops' stop; the stack unwinds them in reverse, before the
    client and the engine close. The loops to start."""
    await stack.enter_async_context(
        instances.running(
            sessions=runtime.sessions, identity=identity, clock=runtime.clock, heartbeat=heartbeat
        )
    )
    stack.push_async_callback(_drain_handlers, runtime.processor)
    loops = Loops()
    stack.push_async_callback(loops.close)
    return loops


async def _drain_handlers(processor: InboxProcessor) -> None:
    """Let handler runs in flight finish on shutdown; what is still queued after the
    grace stays `received` in the inbox for the sweeper of the next start."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(SHUTDOWN_GRACE_S):
            await processor.drain()


def _log_started(runtime: Runtime, *, sandboxed: bool) -> None:
    settings = runtime.settings
    wecom = "sandbox" if sandboxed else ("configured" if runtime.wecom else "unset")
    logger.info(
        "CampBot started",
        extra={
            "database": make_url(settings.database_url).render_as_string(hide_password=True),
            "wecom": wecom,
            "callback": runtime.crypto is not None,
            "public_base_url": settings.public_base_url,
            "handlers": settings.campbot_handlers.value,  # worker: `campbot worker` runs them
        },
    )


def _warn_unconfigured(runtime: Runtime) -> None:
    if runtime.crypto is None:
        logger.warning("WeCom callback settings are unset: /wecom/callback answers 503")
    if runtime.wecom is None:
        logger.warning("WECOM_CORP_ID/WECOM_SECRET unset: nothing is sent to WeCom")
    if not runtime.settings.handlers_here and backend(runtime.sessions) == "sqlite":
        logger.warning(
            "CAMPBOT_HANDLERS=worker on SQLite: the workers' writes wait for the lock intake "
            "commits with, so intake gets slower; keep SQLite inline (README)"
        )


app = create_app(sandbox_when_unconfigured=True)
# Everything imported so far lives as long as the process: moving it out of the
# collector's generations shortens the full collections that showed as the intake's
# p99 tail (bench/callback_ingest.py: SQLite p99 ~145 ms -> ~60 ms).
gc.freeze()
