"""Engine, sessions and the declarative base.

SQLite (the default) gets WAL and a busy timeout so concurrent writers wait
instead of failing, one pooled connection (see `create_engine`), and a leaner
aiosqlite adapter (`_OneTripCursor`); PostgreSQL is reached through asyncpg.
"""

from __future__ import annotations

import collections
import sqlite3
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import DateTime, MetaData, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.types import TypeDecorator
from sqlalchemy.util import EMPTY_DICT
from sqlalchemy.util.concurrency import await_

from app.errors import RetryLater

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLITE_BUSY_TIMEOUT_MS = 10_000
# PostgreSQL: serialization failure, deadlock, lock not available, admin shutdown,
# cannot connect now: the same work may succeed when run again.
_TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "55P03", "57P01", "57P03"})


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, say when transactions begin (see _begin_immediate).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(connection: Any) -> None:
    # A deferred transaction that reads and then writes cannot wait for the write lock
    # (SQLite answers "database is locked" at once to avoid a deadlock); taking the lock
    # up front makes concurrent writers queue behind the busy timeout instead.
    dbapi_connection = connection.connection.dbapi_connection
    if isinstance(dbapi_connection, _OneTripConnection):
        dbapi_connection.begin_with_next_statement()
    else:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _reset_sqlite(dbapi_connection: Any, _record: Any, state: Any) -> None:
    # The pool's reset, minus a trip to aiosqlite's thread when there is nothing to undo:
    # SQLite itself says whether a transaction is open (readable from any thread).
    if state.terminate_only:
        return
    try:
        open_transaction = bool(dbapi_connection.driver_connection.in_transaction)
    except Exception:
        open_transaction = True  # a broken connection: let rollback report it
    if open_transaction:
        dbapi_connection.rollback()


_Outcome = tuple[Any, list[Any], int, int | None]


def _run_statement(
    connection: sqlite3.Connection, operation: str, parameters: Any, many: bool, begin: bool
) -> _Outcome:
    """Runs in aiosqlite's thread: BEGIN when asked, the whole statement, its rows, its counts."""
    if begin:
        connection.execute("BEGIN IMMEDIATE")
    cursor = connection.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        else:
            cursor.execute(operation, () if parameters is None else parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


class _OneTripCursor(AsyncAdapt_aiosqlite_cursor):
    """SQLAlchemy's aiosqlite cursor, but one trip to aiosqlite's thread per statement.

    The stock adapter makes three or four (open the cursor, execute, fetch, close), and
    each trip (a queue, a thread switch, a wake-up of the event loop) costs more CPU
    than SQLite's own work on our small statements. Results are fetched whole, as the
    stock adapter does for non-streaming cursors.
    """

    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: Any) -> None:
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._soft_closed_memoized = EMPTY_DICT
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return 1

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        pass

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._run(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        self._run(operation, seq_of_parameters, many=True)

    def _run(self, operation: Any, parameters: Any, *, many: bool) -> None:
        try:
            outcome = await_(self._run_async(operation, parameters, many))
        except Exception as error:
            self._adapt_connection._handle_exception(error)
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows)

    async def _run_async(self, operation: Any, parameters: Any, many: bool) -> _Outcome:
        connection = cast(_OneTripConnection, self._adapt_connection)
        async with connection._execute_mutex:
            begin = connection.take_pending_begin()
            driver = self._connection
            outcome: _Outcome = await driver._execute(
                _run_statement, driver._conn, operation, parameters, many, begin
            )
            return outcome

    async def _async_soft_close(self) -> None:
        pass  # nothing is open in the thread between statements

    def close(self) -> None:
        self._rows.clear()

    def setinputsizes(self, *inputsizes: Any) -> None:
        pass


class _OneTripConnection(AsyncAdapt_aiosqlite_connection):
    """The connection for `_OneTripCursor`; it also sends BEGIN with the transaction's
    first statement instead of on a trip of its own."""

    __slots__ = ("_begin_pending",)
    _cursor_cls = _OneTripCursor

    def __init__(self, dbapi: Any, connection: Any) -> None:
        super().__init__(dbapi, connection)
        self._begin_pending = False

    def begin_with_next_statement(self) -> None:
        self._begin_pending = True

    def take_pending_begin(self) -> bool:
        pending, self._begin_pending = self._begin_pending, False
        return pending

    def commit(self) -> None:
        if not self.take_pending_begin():  # else: nothing ran, nothing to commit
            super().commit()

    def rollback(self) -> None:
        if not self.take_pending_begin():
            super().rollback()


class _OneTripDBAPI(AsyncAdapt_aiosqlite_dbapi):
    def connect(self, *arg: Any, **kw: Any) -> AsyncAdapt_aiosqlite_connection:
        stock = super().connect(*arg, **kw)
        return _OneTripConnection(self, stock._connection)


def _sqlite_dbapi() -> _OneTripDBAPI:
    import aiosqlite

    return _OneTripDBAPI(aiosqlite, sqlite3)


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    if url.startswith("sqlite"):
        if not _in_memory(url):
            # One connection: SQLite has one write lock and every transaction here takes it
            # (BEGIN IMMEDIATE), so more connections only move the queue from the pool (FIFO,
            # in the event loop) into SQLite's busy handler (sleeps, no fairness: a long tail).
            kwargs.setdefault("pool_size", 1)
            kwargs.setdefault("max_overflow", 0)
        if url.startswith("sqlite+aiosqlite"):
            kwargs.setdefault("module", _sqlite_dbapi())
        engine = create_async_engine(
            url,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_reset_on_return=None,  # _reset_sqlite does it
            **kwargs,
        )
        event.listen(engine.sync_engine, "connect", _tune_sqlite)
        event.listen(engine.sync_engine, "begin", _begin_immediate)
        event.listen(engine.sync_engine, "reset", _reset_sqlite)
        return engine
    kwargs.setdefault("pool_size", 10)
    kwargs.setdefault("max_overflow", 20)
    engine = create_async_engine(url, **kwargs)
    event.listen(engine.sync_engine.pool, "checkin", _note_idle)
    event.listen(engine.sync_engine.pool, "checkout", _ping_when_idle)
    return engine


# A pooled connection used this recently is taken as alive, unpinged. SQLAlchemy's
# pool_pre_ping pings at every checkout, and asyncpg's ping is three round trips (BEGIN, a
# query, ROLLBACK) on top of a handler's five (BEGIN, a read, an insert, an update, COMMIT)
# and of each group commit of intake.
# A connection that dies inside this window fails its next statement instead; that error
# is transient (retried), and SQLAlchemy then replaces every connection of the pool.
PING_AFTER_IDLE_S = 1.0


def _note_idle(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    record.info["idle_since"] = time.monotonic()


def _ping_when_idle(
    dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
) -> None:
    """Pool checkout: a connection idle longer than PING_AFTER_IDLE_S is pinged, and one that
    fails the ping is replaced (the pool retries the checkout on DisconnectionError)."""
    idle_since = record.info.get("idle_since")
    if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
        return  # a new connection, or one in use a moment ago
    try:
        dbapi_connection.ping()
    except Exception as exc:
        raise DisconnectionError(f"a pooled connection failed its ping: {exc}") from exc


def _in_memory(url: str) -> bool:
    # In-memory databases get SQLAlchemy's StaticPool, which takes no size.
    return make_url(url).database in (None, "", ":memory:")


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False)


@asynccontextmanager
async def session_scope(sessions: async_sessionmaker[AsyncSession]) -> AsyncIterator[AsyncSession]:
    """A unit of work that commits on success and rolls back on any error."""
    async with sessions() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


def is_transient(exc: BaseException) -> bool:
    """An error that says nothing about the work itself: a database lock or connection, or a
    handler's RetryLater.

    Such work is worth running again later, unlike a bug or a constraint violation.
    """
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeoutError | ConnectionError):
        return True  # "database is locked", a lost connection, a full pool
    if isinstance(exc, RetryLater):
        return True  # a handler's own "not now" (e.g. WeCom unreachable for a download)
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return True
        code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
        return code in _TRANSIENT_SQLSTATES
    return False


def backend(sessions: async_sessionmaker[AsyncSession]) -> str:
    """The dialect name ("sqlite", "postgresql") the sessions talk to."""
    bind = sessions.kw.get("bind")
    return bind.dialect.name if isinstance(bind, AsyncEngine) else ""


def dialect_insert(session: AsyncSession) -> Any:
    """The INSERT construct with ON CONFLICT support for the session's backend."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert
