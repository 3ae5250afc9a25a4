"""Shared fixtures: a database per backend, an injected clock, the app, and WeCom's side.

Database tests run on SQLite and on PostgreSQL. PostgreSQL is reached through
CAMPBOT_TEST_POSTGRES_URL, which `./run test` sets after starting a throwaway
cluster; when it is unset (a bare `pytest`), the PostgreSQL cases skip, saying so.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.base import PGDialect
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import ManualClock
from app.db import Base, create_engine, create_sessionmaker
from app.settings import Settings
from app.storage import FolderStorage, use_storage
from app.wecom.client import WeComClient
from app.wecom.crypto import CallbackCrypto
from app.wecom_sandbox.callbacks import CallbackBuilder
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from tests.processes import SandboxServer, migrated_from_empty
from tests.support import (
    AES_KEY,
    AGENT_ID,
    APP_SECRET,
    CORP_ID,
    T0,
    TOKEN,
    TRIALS,
    AppHarness,
    running_app,
)

PG_URL_ENV = "CAMPBOT_TEST_POSTGRES_URL"


def postgres_url() -> str | None:
    return os.environ.get(PG_URL_ENV) or None


def backend_params() -> list[object]:
    return [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: needs the PostgreSQL test server")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if postgres_url():
        return
    skip = pytest.mark.skip(reason=f"{PG_URL_ENV} is unset; `./run test` provides PostgreSQL")
    for item in items:
        if "postgres" in item.keywords:
            item.add_marker(skip)


async def _reset_postgres(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(text("DROP SCHEMA public CASCADE"))
        await conn.execute(text("CREATE SCHEMA public"))
        await conn.run_sync(Base.metadata.create_all)


@pytest.fixture(params=backend_params())
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    if request.param == "sqlite":
        engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'campbot.db'}")
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
    else:
        url = postgres_url()
        assert url is not None
        engine = create_engine(url)
        await _reset_postgres(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
def sessions(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engine)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def settings() -> Settings:
    return Settings(
        WECOM_CORP_ID=CORP_ID,
        WECOM_TOKEN=TOKEN,
        WECOM_ENCODING_AES_KEY=AES_KEY,
        WECOM_AGENT_ID=AGENT_ID,
        WECOM_SECRET=APP_SECRET,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def sandbox(clock: ManualClock) -> SandboxState:
    """The WeCom fake holding the test corp, on the test clock."""
    return SandboxState(corp_id=CORP_ID, apps={AGENT_ID: APP_SECRET}, clock=clock)


@pytest.fixture
async def wecom_http(sandbox: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client whose requests to WeCom are answered by the sandbox."""
    async with httpx.AsyncClient(
        base_url="https://qyapi.weixin.qq.com", transport=sandbox_transport(sandbox)
    ) as client:
        yield client


@pytest.fixture
def wecom_client(
    wecom_http: httpx.AsyncClient, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> WeComClient:
    return WeComClient(
        http=wecom_http,
        corp_id=CORP_ID,
        agent_id=AGENT_ID,
        secret=APP_SECRET,
        sessions=sessions,
        clock=clock,
    )


@pytest.fixture
def wecom(settings: Settings) -> CallbackBuilder:
    """WeCom's side of the callback protocol for the test corp."""
    return CallbackBuilder(
        CallbackCrypto(token=TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID),
        agent_id="1000002",
    )


@pytest.fixture
async def harness(
    settings: Settings, clock: ManualClock, engine: AsyncEngine
) -> AsyncIterator[AppHarness]:
    async with running_app(settings=settings, clock=clock, engine=engine) as running:
        yield running


@pytest.fixture
async def pg_url() -> str:
    """The test PostgreSQL database, emptied and migrated as `campbot migrate` would, for
    child processes (tests using it are marked `postgres`)."""
    url = postgres_url()
    assert url is not None
    return await migrated_from_empty(url)


@pytest.fixture
def sandbox_server(tmp_path: Path) -> Iterator[SandboxServer]:
    """`campbot sandbox` as a process of its own (it outlives the CampBot children)."""
    server = SandboxServer.start(tmp_path)
    yield server
    server.stop()


@pytest.fixture(scope="session", autouse=True)
def trial_workers() -> Iterator[None]:
    """The apps' shared trial-render workers stop with the session (no process outlives it)."""
    yield
    TRIALS.close()


@pytest.fixture(autouse=True)
def upload_folder(tmp_path: Path) -> Iterator[FolderStorage]:
    """Every test stores images in its own folder, never the repo's `uploads/`."""
    storage = FolderStorage(tmp_path / "uploads")
    use_storage(storage)
    yield storage
    use_storage(None)


@pytest.fixture(autouse=True)
def forget_finished_engines() -> Iterator[None]:
    """Each mapper caches its INSERT/UPDATE statements per dialect, and PostgreSQL's dialect
    its reflection queries in lru_caches keyed by the dialect, so every finished test's
    engine would stay alive in them: hundreds of dialects after a hundred tests, and full
    garbage collections slow enough (> 100 ms) to fail the tests that time the event loop.
    A server has one engine; the tests forget each test's instead."""
    yield
    for mapper in Base.registry.mappers:
        mapper._compiled_cache.clear()
    for method in vars(PGDialect).values():
        if hasattr(method, "cache_clear"):
            method.cache_clear()
