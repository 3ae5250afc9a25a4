"""`campbot calendar` prints the dry run an operator checks before a camp."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from app import settings as settings_module
from app.clock import ManualClock
from app.db import Base, create_engine, create_sessionmaker
from tests.schedules.camp import camp


async def _camp_at(url: str, clock: ManualClock, soon: datetime) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    await camp(create_sessionmaker(engine), clock, trigger={"type": "at", "at": soon.isoformat()})
    await engine.dispose()


def test_calendar_command_lists_due_sends(
    tmp_path: Path, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"
    soon = (datetime.now(UTC) + timedelta(hours=2)).replace(second=0, microsecond=0)
    asyncio.run(_camp_at(url, clock, soon))

    from app.cli import cli

    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.chdir(tmp_path)
    settings_module.get_settings.cache_clear()
    try:
        near = CliRunner().invoke(cli, ["calendar", "--hours", "3"])
        far = CliRunner().invoke(cli, ["calendar", "--hours", "1"])
    finally:
        settings_module.get_settings.cache_clear()
    local = soon.astimezone(ZoneInfo("Asia/Shanghai"))
    assert near.exit_code == 0, near.output
    expected = (
        f"{local:%Y-%m-%d %H:%M} (Asia/Shanghai)  day1_tasks  "
        "→ robot:robot-1（群机器人）, robot:robot-2（群机器人）"
    )
    assert expected in near.output
    assert "没有待发送的内容" in far.output
