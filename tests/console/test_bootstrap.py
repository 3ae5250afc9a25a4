"""The first logins: `campbot users create --role admin` at a terminal, and on the sandbox's
first run a demo 管理员 whose login the start-up log prints."""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from app.cli import cli
from app.clock import ManualClock
from app.db import Base, create_engine
from app.main import create_app
from app.settings import Settings, get_settings
from tests.console.support import Console


async def test_the_sandbox_first_run_prints_a_demo_login_that_works(
    engine: AsyncEngine, clock: ManualClock, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    for _ in range(2):  # the second start makes no second account
        caplog.clear()
        app = create_app(
            settings=settings,
            clock=clock,
            engine=engine,
            sweeper=False,
            scheduler=False,
            sender=False,
            sandbox_when_unconfigured=True,
        )
        with caplog.at_level(logging.WARNING, logger="app.main"):
            async with app.router.lifespan_context(app):
                printed = [r.getMessage() for r in caplog.records if "运营后台" in r.getMessage()]
                if printed:
                    login = re.search(r"演示账号 (\S+) 密码 (\S+)（", printed[0])
                    assert login is not None, printed
                    async with Console(app) as browser:
                        await browser.sign_in(login.group(1), login.group(2))
                        home = await browser.get("/console/")
                        assert "演示管理员（管理员）" in home.text
                    first = login.group(2)
        assert bool(printed) == (_ == 0)
    assert first


@pytest.fixture
def cli_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("DATABASE_URL", url)
    for name in ("WECOM_CORP_ID", "WECOM_TOKEN", "WECOM_ENCODING_AES_KEY", "WECOM_SECRET"):
        monkeypatch.delenv(name, raising=False)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


async def _schema(url: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await engine.dispose()


def test_campbot_users_create_makes_an_admin_who_can_sign_in(
    cli_database: str, clock: ManualClock
) -> None:
    asyncio.run(_schema(cli_database))
    runner = CliRunner()
    short = runner.invoke(
        cli, ["users", "create", "--name", "boss", "--role", "admin", "--password", "short"]
    )
    assert short.exit_code == 2
    assert "密码至少 10 个字符" in short.output
    made = runner.invoke(
        cli,
        ["users", "create", "--name", "boss", "--role", "admin", "--password", "boss-password-1"],
    )
    assert made.exit_code == 0, made.output
    assert "已创建管理员账号「boss」" in made.output
    again = runner.invoke(
        cli,
        ["users", "create", "--name", "boss", "--role", "admin", "--password", "boss-password-1"],
    )
    assert again.exit_code == 2
    assert "已被使用" in again.output
    asyncio.run(_signs_in(cli_database, clock, "boss-password-1"))
    reset = runner.invoke(cli, ["users", "set-password", "boss", "--password", "another-pass-2"])
    assert reset.exit_code == 0
    assert "已重设" in reset.output
    asyncio.run(_signs_in(cli_database, clock, "another-pass-2"))


async def _signs_in(url: str, clock: ManualClock, password: str) -> None:
    engine = create_engine(url)
    try:
        settings = Settings(WECOM_CORP_ID="wwx", _env_file=None)  # type: ignore[call-arg]
        app = create_app(
            settings=settings,
            clock=clock,
            engine=engine,
            sweeper=False,
            scheduler=False,
            sender=False,
            wecom_transport=httpx.MockTransport(lambda r: httpx.Response(500)),
        )
        async with app.router.lifespan_context(app), Console(app) as browser:
            await browser.sign_in("boss", password)
            assert (await browser.get("/console/accounts")).status_code == 200
    finally:
        await engine.dispose()
