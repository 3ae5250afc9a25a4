"""The engine: SQLite's one connection and its one-trip cursor keep DBAPI semantics (counts,
RETURNING, executemany, BEGIN IMMEDIATE folded into the first statement, rollback), the pool
never hands out a connection with a transaction open; which errors are transient; PostgreSQL's
pool pings only connections left idle, and heals from a dead one either way."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.dialects.postgresql.asyncpg import AsyncAdapt_asyncpg_connection
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine

from app import db
from app.db import create_engine, is_transient
from tests.conftest import postgres_url


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

    assert is_transient(DBAPIError("s", {}, Deadlock()))


@pytest.fixture
async def postgres() -> AsyncIterator[AsyncEngine]:
    url = postgres_url()
    assert url is not None
    engine = create_engine(url, pool_size=1, max_overflow=0)
    yield engine
    await engine.dispose()


@pytest.fixture
def pings(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Each ping of a pooled PostgreSQL connection, recorded (and still sent)."""
    sent: list[int] = []
    stock = AsyncAdapt_asyncpg_connection.ping

    def counted(self: AsyncAdapt_asyncpg_connection) -> None:
        sent.append(1)
        stock(self)

    monkeypatch.setattr(AsyncAdapt_asyncpg_connection, "ping", counted)
    return sent


async def _backend_pid(engine: AsyncEngine) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(pid: int) -> None:
    """Kill one server backend from outside the pool, as a PostgreSQL restart would."""
    url = postgres_url()
    assert url is not None
    other = create_engine(url)
    try:
        async with other.connect() as conn:
            await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        await other.dispose()


@pytest.mark.postgres
async def test_a_connection_in_use_a_moment_ago_is_not_pinged(
    postgres: AsyncEngine, pings: list[int]
) -> None:
    first = await _backend_pid(postgres)
    for _ in range(20):
        assert await _backend_pid(postgres) == first  # the one pooled connection, reused
    assert pings == []


@pytest.mark.postgres
async def test_a_dead_idle_connection_is_pinged_and_replaced_unseen(
    postgres: AsyncEngine, pings: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # every checkout counts as idle
    dead = await _backend_pid(postgres)
    await _terminate(dead)
    assert await _backend_pid(postgres) != dead  # no error: the ping found it dead
    assert pings


@pytest.mark.postgres
async def test_a_connection_dying_within_the_window_fails_once_transiently_then_heals(
    postgres: AsyncEngine, pings: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 3600.0)
    dead = await _backend_pid(postgres)
    await _terminate(dead)
    with pytest.raises(DBAPIError) as failed:
        await _backend_pid(postgres)
    assert is_transient(failed.value)  # the work is retried, not dropped
    assert await _backend_pid(postgres) != dead
    assert pings == []
