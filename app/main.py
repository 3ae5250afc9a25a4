"""The ASGI app: `uvicorn app.main:app`.

`create_app()` wires the platform to the bots (the one place `app` imports
`bots`) and starts the inbox sweeper in the lifespan. Tests call it with their
own settings, clock and engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable

from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api import api_router
from app.api.callback import callback_error_response
from app.clock import Clock, SystemClock
from app.db import create_engine, create_sessionmaker
from app.errors import CallbackError
from app.inbox import run_sweeper
from app.runtime import Runtime, callback_crypto
from app.settings import Settings, describe_settings_error, get_settings
from bots import ROUTERS
from bots.dispatch import Dispatcher, Router

logger = logging.getLogger(__name__)


class StartupRefused(RuntimeError):
    """Settings that must be fixed before CampBot can start."""


def load_settings() -> Settings:
    try:
        return get_settings()
    except ValidationError as exc:
        raise StartupRefused("CampBot cannot start:\n" + describe_settings_error(exc)) from None


def build_runtime(
    *, settings: Settings, clock: Clock, engine: AsyncEngine, routers: Iterable[Router]
) -> Runtime:
    sessions = create_sessionmaker(engine)
    dispatcher = Dispatcher(routers=routers, sessions=sessions, settings=settings, clock=clock)
    return Runtime(
        settings=settings,
        clock=clock,
        engine=engine,
        sessions=sessions,
        processor=dispatcher,
        crypto=callback_crypto(settings),
    )


def create_app(
    *,
    settings: Settings | None = None,
    clock: Clock | None = None,
    engine: AsyncEngine | None = None,
    routers: Iterable[Router] = ROUTERS,
    sweeper: bool = True,
) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or load_settings()
        own_engine = engine is None
        runtime = build_runtime(
            settings=resolved,
            clock=clock or SystemClock(),
            engine=engine or create_engine(resolved.database_url),
            routers=routers,
        )
        app.state.runtime = runtime
        if runtime.crypto is None:
            logger.warning("WeCom callback settings are unset: /wecom/callback answers 503")
        task = (
            asyncio.create_task(
                run_sweeper(
                    sessions=runtime.sessions,
                    processor=runtime.processor,
                    clock=runtime.clock,
                )
            )
            if sweeper
            else None
        )
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if own_engine:
                await runtime.engine.dispose()

    app = FastAPI(title="CampBot 训练营助手", lifespan=lifespan)
    app.include_router(api_router)
    app.add_exception_handler(CallbackError, callback_error_response)
    return app


app = create_app()
