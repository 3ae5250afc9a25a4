"""Content packs: idempotent import by key, export that imports back unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

import scripts_library.models  # noqa: F401 - registers the tables for the engine fixture
from app.clock import ManualClock
from scripts_library import service
from scripts_library.errors import ScriptValidationError
from scripts_library.loader import DEFAULT_PACK, ImportReport, export_pack, import_pack
from scripts_library.models import Script, ScriptVersion
from tests.support import count_rows

Sessions = async_sessionmaker[AsyncSession]


async def run_import(sessions: Sessions, *paths: Path, clock: ManualClock) -> ImportReport:
    async with sessions() as session:
        report = await import_pack(
            session=session, paths=list(paths), author="部署脚本", now=clock.now()
        )
        await session.commit()
    return report


async def test_import_twice_changes_nothing_the_second_time(
    sessions: Sessions, clock: ManualClock
) -> None:
    first = await run_import(sessions, DEFAULT_PACK, clock=clock)
    assert len(first.created) >= 30
    assert first.updated == first.unchanged == []
    second = await run_import(sessions, DEFAULT_PACK, clock=clock)
    assert second.created == second.updated == []
    assert sorted(second.unchanged) == sorted(first.created)
    assert await count_rows(sessions, ScriptVersion) == len(first.created)


async def test_a_changed_body_is_updated_with_a_new_version(
    sessions: Sessions, clock: ManualClock, tmp_path: Path
) -> None:
    pack = tmp_path / "pack"
    shutil.copytree(DEFAULT_PACK, pack)
    await run_import(sessions, pack, clock=clock)
    daily = pack / "10_daily.yaml"
    daily.write_text(
        daily.read_text(encoding="utf-8").replace("今天的主题：起步", "今日主题：起步"),
        encoding="utf-8",
    )
    report = await run_import(sessions, pack, clock=clock)
    assert report.updated == ["day1_todolist"]
    assert report.created == []
    async with sessions() as session:
        history = await service.versions(session=session, key="day1_todolist")
    assert next((v.version, v.author, v.note) for v in history) == (
        2,
        "部署脚本",
        "导入 10_daily.yaml",
    )
    assert "今日主题：起步" in history[0].body
    assert "今天的主题：起步" in history[1].body


async def test_export_then_import_is_unchanged(
    sessions: Sessions, clock: ManualClock, tmp_path: Path
) -> None:
    created = (await run_import(sessions, DEFAULT_PACK, clock=clock)).created
    async with sessions() as session:
        written = await export_pack(session=session, directory=tmp_path / "out")
    assert sorted(p.name for p in written) == [
        "daily.yaml",
        "milestone.yaml",
        "onboarding.yaml",
        "touch.yaml",
    ]
    exported = (tmp_path / "out" / "daily.yaml").read_text(encoding="utf-8")
    assert "body: |" in exported
    assert "今天的主题：起步" in exported
    report = await run_import(sessions, tmp_path / "out", clock=clock)
    assert report.created == report.updated == []
    assert sorted(report.unchanged) == sorted(created)


async def test_an_invalid_pack_writes_nothing_and_names_file_and_key(
    sessions: Sessions, clock: ManualClock, tmp_path: Path
) -> None:
    (tmp_path / "a.yaml").write_text(
        "scripts:\n"
        "  - {key: ok, title: 好的, category: daily, msgtype: text, body: 你好}\n"
        "  - {key: broken, title: 坏的, category: daily, msgtype: text, body: '{{ nmae }}',\n"
        "     schedule: {type: cohort_day, day: 1, time: 20:00, target: {type: cohort_groups}}}\n",
        encoding="utf-8",
    )
    (tmp_path / "b.yaml").write_text(
        "scripts:\n  - {key: ok, title: 重复, category: daily, msgtype: text, body: 嗨}\n",
        encoding="utf-8",
    )
    (tmp_path / "c.yaml").write_text("scripts: [\n", encoding="utf-8")
    with pytest.raises(ScriptValidationError) as caught:
        await run_import(sessions, tmp_path, clock=clock)
    fields = {p.field for p in caught.value.problems}
    assert fields == {
        "a.yaml:broken.body",
        "a.yaml:broken.schedule_hint.time",
        "b.yaml:ok.key",
        "c.yaml",
    }
    assert await count_rows(sessions, Script) == 0


def test_the_cli_imports_and_exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import asyncio

    from typer.testing import CliRunner

    from app.db import Base, create_engine
    from app.settings import get_settings
    from scripts_library.cli import scripts_cli

    url = f"sqlite+aiosqlite:///{tmp_path / 'cli.db'}"

    async def create_tables() -> None:
        engine = create_engine(url)
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        await engine.dispose()

    asyncio.run(create_tables())
    monkeypatch.setenv("DATABASE_URL", url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        first = runner.invoke(scripts_cli, ["import", "--author", "测试"])
        assert first.exit_code == 0, first.output
        assert first.output.startswith("新建 ")
        again = runner.invoke(scripts_cli, ["import"])
        assert "新建 0 条" in again.output
        assert "更新 0 条" in again.output
        out = runner.invoke(scripts_cli, ["export", str(tmp_path / "out")])
        assert out.exit_code == 0
        assert "daily.yaml" in out.output
        (tmp_path / "bad.yaml").write_text("scripts: 1\n", encoding="utf-8")
        bad = runner.invoke(scripts_cli, ["import", str(tmp_path / "bad.yaml")])
        assert bad.exit_code == 2
        assert "bad.yaml" in bad.output
    finally:
        get_settings.cache_clear()
