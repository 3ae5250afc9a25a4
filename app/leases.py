"""Leases: a named job that one running instance does at a time, held in SQL.

A lease is held by an instance (app.instances) until it expires, unless renewed, and no
longer than the holder lives: an instance whose heartbeat went stale (or that stopped and
unregistered) holds nothing, so another takes the job over within seconds of a `kill -9`.
A holder that is no registered instance (`heartbeat=False`: a loop that knows no instance
id) holds it until it expires.
It works on SQLite and PostgreSQL alike (the scheduler's leadership on SQLite with several
workers; the customer groups' welcome template sync on every backend).

Leases order work; they are not the only guard against a double send: the outbox keys are.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import and_, case, delete, or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from app.db import dialect_insert
from app.instances import gone
from app.models import Lease


async def acquire(
    *,
    session: AsyncSession,
    name: str,
    holder: str,
    now: datetime,
    ttl: timedelta,
    heartbeat: bool = True,
) -> bool:
    """Take or renew the lease `name` for `holder` until now + ttl; False while another
    holder has it (and, with `heartbeat`, lives)."""
    insert = dialect_insert(session)
    await session.execute(
        insert(Lease)
        .values(name=name, holder=holder, acquired_at=now, expires_at=now + ttl)
        .on_conflict_do_nothing(index_elements=["name"])
    )
    free = or_(Lease.holder == holder, Lease.expires_at < now)
    if heartbeat:
        free = or_(free, gone(Lease.holder, now=now, me=holder))
    taken = await session.execute(
        update(Lease)
        .where(and_(Lease.name == name, free))
        .values(
            holder=holder,
            expires_at=now + ttl,
            acquired_at=case((Lease.holder == holder, Lease.acquired_at), else_=now),
        )
        .execution_options(synchronize_session=False)
    )
    return bool(taken.rowcount)  # type: ignore[attr-defined]


async def release(*, session: AsyncSession, name: str, holder: str) -> None:
    """Give the lease up (only if `holder` still has it)."""
    await session.execute(delete(Lease).where(Lease.name == name, Lease.holder == holder))
