"""`campbot backup`: SQLite's online backup, taken while another connection is writing, holds
what was committed and nothing half-written; PostgreSQL is pointed at pg_dump."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from app import settings as settings_module
from app.migrations import upgrade


@pytest.fixture
def at_url(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.chdir(tmp_path)
    for name in ("WECOM_CORP_ID", "WECOM_SECRET", "WECOM_TOKEN", "WECOM_ENCODING_AES_KEY"):
        monkeypatch.delenv(name, raising=False)
    settings_module.get_settings.cache_clear()
    yield
    settings_module.get_settings.cache_clear()


def campbot(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> Result:
    from app.cli import cli

    monkeypatch.setenv("DATABASE_URL", url)
    settings_module.get_settings.cache_clear()
    return CliRunner().invoke(cli, list(args))


def _rows(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        return [key for (key,) in db.execute("SELECT name FROM leases ORDER BY name")]


@pytest.mark.usefixtures("at_url")
def test_a_backup_taken_during_a_write_holds_what_was_committed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = tmp_path / "campbot.db"
    url = f"sqlite+aiosqlite:///{live}"
    upgrade(url)
    writer = sqlite3.connect(live, isolation_level=None)
    writer.execute("PRAGMA journal_mode=WAL")
    insert = "INSERT INTO leases VALUES (?, 'x', '2026-03-01 00:00:00', '2026-03-01 00:00:00')"
    writer.execute(insert, ("committed",))
    writer.execute("BEGIN IMMEDIATE")  # the service mid-write: holds the write lock
    writer.execute(insert, ("uncommitted",))
    try:
        result = campbot(monkeypatch, url, "backup", str(tmp_path / "backup.db"))
    finally:
        writer.execute("COMMIT")
        writer.close()
    assert result.exit_code == 0, result.output
    assert result.output.startswith("backed up ")
    assert _rows(tmp_path / "backup.db") == ["committed"]
    assert not list(tmp_path.glob(".backup.db.partial"))
    # Restoring is copying the file back: it opens as a CampBot database at head.
    with sqlite3.connect(tmp_path / "backup.db") as db:
        [(version,)] = db.execute("SELECT version_num FROM alembic_version").fetchall()
    with sqlite3.connect(live) as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(version,)]


@pytest.mark.usefixtures("at_url")
def test_backup_never_overwrites_and_sends_postgresql_to_pg_dump(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'campbot.db'}"
    upgrade(url)
    existing = tmp_path / "old.db"
    existing.write_bytes(b"an older backup")
    result = campbot(monkeypatch, url, "backup", str(existing))
    assert result.exit_code == 2
    assert "exists already" in result.output
    assert existing.read_bytes() == b"an older backup"

    result = campbot(monkeypatch, "postgresql+asyncpg://u@127.0.0.1/x", "backup", "b.db")
    assert result.exit_code == 2
    assert "pg_dump" in result.output
    assert not (tmp_path / "b.db").exists()
