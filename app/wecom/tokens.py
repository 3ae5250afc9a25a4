"""The access token: cached in memory, shared through the database, refreshed once.

A refresh happens ahead of expiry (REFRESH_MARGIN) or when WeCom rejects the
token. It is single-flight within the process (an asyncio lock) and, on PostgreSQL, across
processes too: under an advisory lock the stored token is re-read first, so when N
instances notice an expiring token together, one calls gettoken and the rest take its
result. SQLite (one instance) fetches outside its single write lock.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import metrics
from app.clock import Clock
from app.db import backend, dialect_insert
from app.models import WeComToken

REFRESH_MARGIN = timedelta(minutes=5)
_EPOCH = datetime.fromisoformat("1970-01-01T00:00:00+00:00")


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int


FetchToken = Callable[[], Awaitable[IssuedToken]]


class TokenStore:
    def __init__(
        self,
        *,
        app_key: str,
        sessions: async_sessionmaker[AsyncSession],
        clock: Clock,
        fetch: FetchToken,
        kind: str = "access_token",
    ) -> None:
        self.app_key = app_key
        self.kind = kind  # what it holds, as the refresh metric names it
        self._sessions = sessions
        self._clock = clock
        self._fetch = fetch
        self._lock = asyncio.Lock()
        self._token = ""
        self._expires_at = _EPOCH

    def _fresh(self, expires_at: datetime) -> bool:
        return expires_at - REFRESH_MARGIN > self._clock.now()

    async def get(self) -> str:
        if self._token and self._fresh(self._expires_at):
            return self._token
        return await self.refresh(rejected="")

    async def refresh(self, *, rejected: str) -> str:
        """A usable token other than `rejected` (the one WeCom just refused, if any)."""
        async with self._lock:
            if self._token and self._token != rejected and self._fresh(self._expires_at):
                return self._token  # another caller in this process refreshed meanwhile
            if backend(self._sessions) == "sqlite":
                return await self._refresh_outside_lock(rejected)
            async with self._sessions.begin() as session:
                await self._lock_across_processes(session)
                stored = await session.get(WeComToken, self.app_key)
                if stored and stored.access_token != rejected and self._fresh(stored.expires_at):
                    self._remember(stored.access_token, stored.expires_at)
                    return self._token
                issued = await self._fetch_counted()
                now = self._clock.now()
                expires_at = now + timedelta(seconds=issued.expires_in)
                await self._store(session, issued.access_token, expires_at, now)
            self._remember(issued.access_token, expires_at)
            return self._token

    async def _refresh_outside_lock(self, rejected: str) -> str:
        """SQLite: its one write lock would stall every other write (the callbacks' intake)
        for as long as gettoken takes, so fetch outside any transaction and store after.
        Across processes (a separate `campbot sender`) two may then fetch at once; WeCom
        answers both with a valid token, and the later store wins."""
        async with self._sessions() as session:
            stored = await session.get(WeComToken, self.app_key)
            if stored and stored.access_token != rejected and self._fresh(stored.expires_at):
                self._remember(stored.access_token, stored.expires_at)
                return self._token
        issued = await self._fetch_counted()
        now = self._clock.now()
        expires_at = now + timedelta(seconds=issued.expires_in)
        async with self._sessions.begin() as session:
            await self._store(session, issued.access_token, expires_at, now)
        self._remember(issued.access_token, expires_at)
        return self._token

    async def _fetch_counted(self) -> IssuedToken:
        try:
            issued = await self._fetch()
        except Exception:
            metrics.TOKEN_REFRESHES.labels(self.kind, "failed").inc()
            raise
        metrics.TOKEN_REFRESHES.labels(self.kind, "ok").inc()
        return issued

    def _remember(self, token: str, expires_at: datetime) -> None:
        self._token, self._expires_at = token, expires_at

    async def _lock_across_processes(self, session: AsyncSession) -> None:
        if session.get_bind().dialect.name == "postgresql":
            lock_id = int.from_bytes(
                hashlib.sha256(self.app_key.encode()).digest()[:8], "big", signed=True
            )
            await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})
            return
        # SQLite: a write takes the database's single write lock for this transaction.
        insert = dialect_insert(session)
        await session.execute(
            insert(WeComToken)
            .values(app_key=self.app_key, access_token="", expires_at=_EPOCH, refreshed_at=_EPOCH)
            .on_conflict_do_update(
                index_elements=["app_key"], set_={"app_key": WeComToken.app_key}
            )
        )

    async def _store(
        self, session: AsyncSession, token: str, expires_at: datetime, now: datetime
    ) -> None:
        insert = dialect_insert(session)
        values = {"access_token": token, "expires_at": expires_at, "refreshed_at": now}
        await session.execute(
            insert(WeComToken)
            .values(app_key=self.app_key, **values)
            .on_conflict_do_update(index_elements=["app_key"], set_=values)
        )

    async def stored(self) -> str | None:
        async with self._sessions() as session:
            row = (
                await session.execute(
                    select(WeComToken.access_token).where(WeComToken.app_key == self.app_key)
                )
            ).scalar_one_or_none()
        return row or None
