"""Which CampBot processes are running: each registers itself and beats every second.

Work a process takes on (an outbox row it claimed, an inbox event it runs) carries its
instance id, so another process can tell work whose owner is gone, to be taken over at
once, from work still in hand, to be left alone. An instance is gone when its heartbeat
is older than STALE_AFTER, or sooner when it was an earlier process on this machine
whose pid no longer runs: a restart sees that as it starts and resumes the dead one's
work without waiting. A clean stop unregisters, which says the same.

Heartbeats are written and read with each process's own clock, like leases and rate
slots: the machines sharing a database keep their clocks in sync (NTP).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import ColumnElement, Select, and_, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from app.background import sleep_or_stop
from app.clock import Clock
from app.db import dialect_insert
from app.models import Instance

HEARTBEAT_S = 1.0
# Heartbeats missed for this long mean the process is gone. Short, as welcomes must go out
# within 20 s; a live process that stalls this long may see its in-flight sends repeated
# (counted in_doubt), never its other work done twice.
STALE_AFTER = timedelta(seconds=5)
# Rows of instances gone this long are deleted (their claims still read as gone).
FORGET_AFTER = timedelta(days=1)

logger = logging.getLogger(__name__)

# The instances this process registered (tests run several in one process).
_OURS: set[str] = set()


def _pid_space() -> str:
    """What makes a pid name one process: this boot of the machine and the pid namespace
    (each container has its own); the hostname where /proc does not tell."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return socket.gethostname()


@dataclass(frozen=True, slots=True)
class Identity:
    """This process as the instances table knows it."""

    id: str
    kind: str
    host: str
    pid_space: str
    pid: int

    @classmethod
    def of_this_process(cls, kind: str) -> Identity:
        return cls(uuid.uuid4().hex, kind, socket.gethostname(), _pid_space(), os.getpid())


def pid_running(pid: int) -> bool:
    """Whether `pid` names a live process here (a zombie, killed but not reaped, is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        # /proc/<pid>/stat: "pid (name) state …"; the name may hold spaces and parentheses.
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False  # reaped since the signal, or between the open and the read
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


def live_ids(now: datetime) -> Select[str]:
    """The ids of instances whose heartbeat is recent (a subquery)."""
    return select(Instance.id).where(Instance.heartbeat_at >= now - STALE_AFTER)


def gone(
    column: InstrumentedAttribute[str | None], *, now: datetime, me: str | None
) -> ColumnElement[bool]:
    """`column` names an instance that is not running. Never `me`: a process knows it lives,
    even when its own heartbeat is late. NULL (work of a process that registers no
    instance) is never gone: only its lease or STUCK_AFTER frees it."""
    condition = and_(column.is_not(None), column.not_in(live_ids(now)))
    return and_(condition, column != me) if me is not None else condition


async def register(
    *, sessions: async_sessionmaker[AsyncSession], identity: Identity, now: datetime
) -> list[str]:
    """Record this process; forget the earlier processes of this pid space that no longer
    run (a restart after a crash), so their work is taken over now. Their ids."""
    # Ours before the commit: another instance of this process registering meanwhile must
    # not take this one, already in the table, for an earlier process's.
    _OURS.add(identity.id)
    async with sessions.begin() as session:
        session.add(
            Instance(
                id=identity.id,
                kind=identity.kind,
                host=identity.host,
                pid_space=identity.pid_space,
                pid=identity.pid,
                started_at=now,
                heartbeat_at=now,
            )
        )
        rows = await session.execute(
            select(Instance.id, Instance.pid).where(
                Instance.pid_space == identity.pid_space, Instance.id != identity.id
            )
        )
        ended = [found_id for found_id, pid in rows.all() if _ended(found_id, pid, identity.pid)]
        if ended:
            await session.execute(delete(Instance).where(Instance.id.in_(ended)))
    if ended:
        logger.warning("instances %s ended without stopping; taking over their work", ended)
    return ended


def _ended(instance_id: str, pid: int, own_pid: int) -> bool:
    if pid == own_pid:
        # Our pid, not one of our instances: an earlier process's (a container restarted
        # with the same pid, as pid 1 is).
        return instance_id not in _OURS
    return not pid_running(pid)


async def beat(*, session: AsyncSession, identity: Identity, now: datetime) -> None:
    """Say this process still runs (and come back if another took it for gone)."""
    updated = await session.execute(
        update(Instance).where(Instance.id == identity.id).values(heartbeat_at=now)
    )
    if not updated.rowcount:  # type: ignore[attr-defined]
        insert = dialect_insert(session)
        await session.execute(
            insert(Instance)
            .values(
                id=identity.id,
                kind=identity.kind,
                host=identity.host,
                pid_space=identity.pid_space,
                pid=identity.pid,
                started_at=now,
                heartbeat_at=now,
            )
            .on_conflict_do_nothing(index_elements=["id"])
        )
    await session.execute(delete(Instance).where(Instance.heartbeat_at < now - FORGET_AFTER))


async def unregister(*, sessions: async_sessionmaker[AsyncSession], identity: Identity) -> None:
    async with sessions.begin() as session:
        await session.execute(delete(Instance).where(Instance.id == identity.id))
    _OURS.discard(identity.id)


async def _try_register(
    sessions: async_sessionmaker[AsyncSession], identity: Identity, clock: Clock
) -> bool:
    try:
        await register(sessions=sessions, identity=identity, now=clock.now())
    except Exception as exc:
        logger.warning(
            "instance %s not registered yet: %s: %s", identity.id, type(exc).__name__, exc
        )
        return False
    return True


@asynccontextmanager
async def running(
    *,
    sessions: async_sessionmaker[AsyncSession],
    identity: Identity,
    clock: Clock,
    heartbeat: bool = True,
) -> AsyncIterator[Identity]:
    """Register this process and keep its heartbeat until the block ends; then unregister,
    so what it left unfinished is taken over at once. A database that does not answer
    delays the registration, not the start (the heartbeat registers once it can).
    `heartbeat=False` registers only (tests on a manual clock, where a beat tells nothing)."""
    registered = await _try_register(sessions, identity, clock)
    stop = asyncio.Event()

    async def beat_once() -> None:
        nonlocal registered
        if not registered:
            registered = await _try_register(sessions, identity, clock)
            return
        async with sessions.begin() as session:
            await beat(session=session, identity=identity, now=clock.now())

    async def beat_until_stopped() -> None:
        while not await sleep_or_stop(stop, HEARTBEAT_S):
            try:
                await beat_once()
            except Exception:
                logger.exception("instance heartbeat failed")

    task = asyncio.create_task(beat_until_stopped()) if heartbeat else None
    try:
        yield identity
    finally:
        stop.set()
        if task is not None:
            await task
        try:
            await unregister(sessions=sessions, identity=identity)
        except Exception:
            # Not fatal: the heartbeat stopped, so others find this instance gone anyway.
            logger.exception("could not unregister instance %s", identity.id)
