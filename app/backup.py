"""`campbot backup`: a consistent copy of the SQLite database while CampBot runs.

SQLite's online backup API copies the database page by page from a read snapshot, so the
service keeps writing meanwhile and the copy is whole (a file copy of a database in WAL
mode may miss what is still in the -wal file). The copy is written beside its target and
renamed into place, so a failed backup leaves no half file. PostgreSQL is backed up with
`pg_dump` (README, "Running in production").
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlalchemy import make_url

PAGES_PER_STEP = 1024  # between steps the database is free for the service's writes


class BackupError(Exception):
    """A backup that cannot be made; the message says why, for the operator."""


def sqlite_file(database_url: str) -> Path:
    """The SQLite file DATABASE_URL names; BackupError for PostgreSQL or a memory database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        raise BackupError(
            f"DATABASE_URL is {url.get_backend_name()}: back it up with pg_dump "
            "(see README, Running in production); campbot backup copies SQLite only"
        )
    if url.database in (None, "", ":memory:"):
        raise BackupError("DATABASE_URL names an in-memory SQLite database: nothing to back up")
    return Path(url.database)


def backup_sqlite(*, database_url: str, to: Path) -> int:
    """Copy the database to `to` (which must not exist); the pages copied."""
    source = sqlite_file(database_url)
    if not source.exists():
        raise BackupError(f"no database at {source}")
    if to.exists():
        raise BackupError(f"{to} exists already: choose a new file")
    partial = to.with_name(f".{to.name}.partial")
    partial.unlink(missing_ok=True)
    copied = 0

    def progress(_status: int, remaining: int, total: int) -> None:
        nonlocal copied
        copied = total - remaining

    reader = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    try:
        writer = sqlite3.connect(partial)
        try:
            reader.backup(writer, pages=PAGES_PER_STEP, progress=progress)
            writer.execute("PRAGMA journal_mode=DELETE")  # a single self-contained file
        finally:
            writer.close()
    finally:
        reader.close()
    os.replace(partial, to)
    return copied
