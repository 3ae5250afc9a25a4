"""The engine: SQLite's one connection and its one-trip cursor keep DBAPI semantics (counts,
RETURNING, executemany, BEGIN IMMEDIATE folded into the first statement, rollback), the pool
never hands out a connection with a transaction open; which errors are transient."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.db import create_engine, is_transient


@pytest.fixture
async def sqlite(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    async with engine.begin() as conn:
        await conn.execute(text("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"))
    yield engine
    await engine.dispose()


async def _values(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return list((await conn.execute(text("SELECT v FROM t ORDER BY id"))).scalars())


async def test_file_sqlite_has_one_pooled_connection(sqlite: AsyncEngine) -> None:
    assert sqlite.pool.size() == 1  # type: ignore[attr-defined]


async def test_counts_returning_and_executemany(sqlite: AsyncEngine) -> None:
    async with sqlite.begin() as conn:
        inserted = await conn.execute(text("INSERT INTO t (v) VALUES ('a')"))
        assert (inserted.rowcount, inserted.lastrowid) == (1, 1)
        many = await conn.execute(text("INSERT INTO t (v) VALUES (:v)"), [{"v": "b"}, {"v": "c"}])
        assert many.rowcount == 2
        returned = await conn.execute(
            text("UPDATE t SET v = v || '!' WHERE v IN ('a', 'b') RETURNING id, v")
        )
        assert sorted(returned.all()) == [(1, "a!"), (2, "b!")]
        assert (await conn.execute(text("SELECT count(*) FROM t"))).scalar_one() == 3
    assert await _values(sqlite) == ["a!", "b!", "c"]


async def test_a_transaction_is_whole_and_takes_the_write_lock_at_its_first_statement(
    sqlite: AsyncEngine,
) -> None:
    async with sqlite.connect() as conn:
        await conn.begin()
        await conn.execute(text("INSERT INTO t (v) VALUES ('x')"))
        raw = await conn.get_raw_connection()
        assert raw.driver_connection.in_transaction  # type: ignore[union-attr]
        await conn.rollback()
    assert await _values(sqlite) == []
    async with sqlite.connect() as conn:
        await conn.begin()
        await conn.execute(text("INSERT INTO t (v) VALUES ('y')"))
        with pytest.raises(IntegrityError):
            await conn.execute(text("INSERT INTO t (v) VALUES ('y')"))
        await conn.rollback()
    assert await _values(sqlite) == []


async def test_an_empty_transaction_commits_and_rolls_back(sqlite: AsyncEngine) -> None:
    async with sqlite.begin():
        pass
    async with sqlite.connect() as conn:
        await conn.begin()
        await conn.rollback()
    async with sqlite.begin() as conn:  # the connection is usable afterwards
        await conn.execute(text("INSERT INTO t (v) VALUES ('z')"))
    assert await _values(sqlite) == ["z"]


async def test_a_connection_returned_mid_transaction_is_rolled_back(
    sqlite: AsyncEngine,
) -> None:
    conn = await sqlite.connect()
    raw = await conn.get_raw_connection()
    driver = raw.driver_connection
    await driver.execute("BEGIN IMMEDIATE")  # type: ignore[union-attr]
    await driver.execute("INSERT INTO t (v) VALUES ('left open')")  # type: ignore[union-attr]
    await conn.close()  # back to the pool, behind SQLAlchemy's back: the reset must undo it
    assert await _values(sqlite) == []
    async with sqlite.begin() as again:  # and the write lock is free
        await again.execute(text("INSERT INTO t (v) VALUES ('next')"))
    assert await _values(sqlite) == ["next"]


def test_transient_errors_are_locks_and_connections_not_bugs() -> None:
    orig = Exception("x")
    assert is_transient(OperationalError("s", {}, orig))  # database is locked
    assert is_transient(PoolTimeoutError())
    assert is_transient(ConnectionResetError())
    assert not is_transient(IntegrityError("s", {}, orig))
    assert not is_transient(ProgrammingError("s", {}, orig))
    assert not is_transient(RuntimeError("a handler bug"))

    class Deadlock(Exception):
        sqlstate = "40P01"

    from sqlalchemy.exc import DBAPIError

    assert is_transient(DBAPIError("s", {}, Deadlock()))
