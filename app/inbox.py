"""The inbox: every callback recorded once under its dedupe key, and the queue
that handlers are run from (ARCHITECTURE §1, rules 1–2).

A row goes `received → handled | failed`. Handlers run after WeCom has its
answer; if the process dies first, the row is still `received` and is run again,
a bounded number of times. Each row names the instance running it (app.instances):
rows of an instance that is gone are resumed within seconds (`run_resumer`, at once
when it restarts on the same machine), time-critical events first, so a welcome
still goes out inside its 20 s; the slower sweep (`run_sweeper`) re-runs rows left
`received` for STUCK_AFTER whatever their instance (a transient error, a handler's
RetryLater).

Intake records callbacks through `Intake`, a group commit: concurrent claims
share one multi-row `INSERT … ON CONFLICT DO NOTHING` and one commit, and each
request is answered only once that commit is done. Rows are inserted with their
first attempt already counted, so the fresh path runs its handlers in a single
transaction (no separate `begin_attempt`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol, cast

from sqlalchemy import Table, Update, bindparam, case, delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.background import every, sleep_or_stop
from app.clock import Clock
from app.db import dialect_insert, is_transient, session_scope
from app.instances import gone
from app.models import InboxEvent, InboxStatus
from app.wecom.events import WeComEvent

# How long handled rows (and so their dedupe keys) are kept. Callbacks signed
# longer ago than this are refused at intake: their key may be gone, so a
# replay could no longer be recognised as one.
KEY_RETENTION = timedelta(days=7)
# A row still `received` this long after its last attempt started is presumed
# orphaned by a crash (handlers finish in seconds).
STUCK_AFTER = timedelta(minutes=2)
MAX_ATTEMPTS = 5
_ERROR_LIMIT = 2000
SWEEP_INTERVAL_S = 30.0
# How often rows of an instance that is gone are looked for (a welcome has 20 s), and how
# many are resumed at once.
RESUME_INTERVAL_S = 1.0
RESUME_BATCH = 100
# Claims written by one group commit at most (8 bound values a row stays far below
# SQLite's 32,766-variable limit); more wait for the next commit.
MAX_CLAIM_BATCH = 128

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Attempt:
    """A row claimed for one run of its handlers."""

    id: int
    dedupe_key: str
    body: str
    attempts: int
    received_at: datetime


class InboxProcessor(Protocol):
    """Runs the handlers for one inbox row (implemented by `bots.dispatch`)."""

    @property
    def time_critical_kinds(self) -> frozenset[str]:
        """Event kinds whose handling is pointless after a while (the welcome's 20 s):
        resumed first."""
        ...

    async def process(
        self, row_id: int, *, expected_attempts: int, late: bool, kind: str | None = None
    ) -> None:
        """Run a row again, unless another worker took it meanwhile; `kind`, when given,
        lets a time-critical event go first."""
        ...

    async def process_claimed(self, attempt: Attempt, event: WeComEvent | None = None) -> None:
        """Run a row whose attempt intake already counted (`Intake.claim`'s rows)."""
        ...

    async def drain(self) -> None:
        """Wait for the runs queued and in progress (at shutdown, before the engine goes)."""
        ...


def _row_values(
    event: WeComEvent, body: str, now: datetime, attempts: int, instance_id: str | None
) -> dict[str, Any]:
    return {
        "dedupe_key": event.dedupe_key,
        "kind": event.kind,
        "body": body,
        "event_time": event.created_at or now,
        "status": InboxStatus.RECEIVED,
        "attempts": attempts,
        "received_at": now,
        "updated_at": now,
        "instance_id": instance_id,
    }


async def claim(
    *,
    session: AsyncSession,
    event: WeComEvent,
    body: str,
    now: datetime,
    attempts: int = 0,
    instance_id: str | None = None,
) -> int | None:
    """Insert the event unless its key is known; the new row's id, or None for a duplicate."""
    insert = dialect_insert(session)
    statement = (
        insert(InboxEvent)
        .values(**_row_values(event, body, now, attempts, instance_id))
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(InboxEvent.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def insert_new(*, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> dict[str, int]:
    """Insert the rows whose keys are unknown, in one statement; {dedupe_key: id} of those."""
    insert = dialect_insert(session)
    # The Core table, not the ORM entity: a plain executemany that SQLAlchemy sends as
    # multi-row VALUES pages ("insertmanyvalues"), compiled once and cached.
    table = cast(Table, InboxEvent.__table__)
    statement = (
        insert(table)
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
        .returning(table.c.id, table.c.dedupe_key)
    )
    result = await session.execute(statement, list(rows))
    return {dedupe_key: row_id for row_id, dedupe_key in result}


@dataclass(slots=True)
class _Claim:
    values: dict[str, Any]
    answer: asyncio.Future[Attempt | None]

    @property
    def key(self) -> str:
        return str(self.values["dedupe_key"])

    def attempt(self, row_id: int) -> Attempt:
        v = self.values
        return Attempt(row_id, v["dedupe_key"], v["body"], v["attempts"], v["received_at"])

    def resolve(self, result: Attempt | None) -> None:
        if not self.answer.done():  # done: the request was cancelled meanwhile
            self.answer.set_result(result)

    def fail(self, exc: BaseException) -> None:
        if self.answer.done():
            return
        if isinstance(exc, asyncio.CancelledError):
            self.answer.cancel()
        else:
            self.answer.set_exception(exc)


def _fail(batch: list[_Claim], exc: BaseException) -> None:
    for pending in batch:
        pending.fail(exc)


class Intake:
    """Records callbacks exactly once, with group commit.

    Every `claim` joins a queue; one writer task at a time takes what is queued
    (up to MAX_CLAIM_BATCH), inserts it in one transaction and answers each claim
    after the commit. Claims arriving meanwhile form the next batch, so under load
    a transaction (and SQLite's write lock) is shared by many callbacks, and with
    one request alone there is no added wait. The writer task exists only while
    claims are queued, so there is nothing to start or stop.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        max_batch: int = MAX_CLAIM_BATCH,
        instance_id: str | None = None,
    ) -> None:
        self._sessions = sessions
        self._max_batch = max_batch
        self._instance_id = instance_id  # the rows' runner (app.instances)
        self._queued: list[_Claim] = []
        self._writer: asyncio.Task[None] | None = None

    async def claim(self, *, event: WeComEvent, body: str, now: datetime) -> Attempt | None:
        """The new row, with its first attempt counted, or None when the key is known.

        Returns only after the row is committed; raises what the insert raised.
        """
        pending = _Claim(
            _row_values(event, body, now, attempts=1, instance_id=self._instance_id),
            asyncio.get_running_loop().create_future(),
        )
        self._queued.append(pending)
        if self._writer is None:
            self._writer = asyncio.create_task(self._write())
        return await pending.answer

    async def _write(self) -> None:
        try:
            while self._queued:
                batch = self._queued[: self._max_batch]
                del self._queued[: self._max_batch]
                await self._commit(batch)
        finally:
            self._writer = None
            # Only reached with claims left when the task itself was cancelled (shutdown).
            for pending in self._queued:
                pending.fail(RuntimeError("inbox intake stopped"))
            self._queued.clear()

    async def _commit(self, batch: list[_Claim]) -> None:
        # A second claim of one key within the batch is a retry, like a known key.
        first: dict[str, _Claim] = {}
        for pending in batch:
            first.setdefault(pending.key, pending)
        try:
            ids = await self._insert(list(first.values()))
        except asyncio.CancelledError as exc:
            _fail(batch, exc)
            raise
        except Exception as exc:
            await self._failed(batch, first, exc)
            return
        for pending in batch:
            row_id = ids.get(pending.key)
            if row_id is not None and first[pending.key] is pending:
                pending.resolve(pending.attempt(row_id))
            else:
                pending.resolve(None)

    async def _failed(self, batch: list[_Claim], first: dict[str, _Claim], exc: Exception) -> None:
        # A transient error would only recur row by row (and wait out the busy timeout
        # each time): the whole batch fails, and WeCom retries each callback.
        if len(first) == 1 or is_transient(exc):
            _fail(batch, exc)
            return
        # One bad row must not fail its neighbours: each key alone, in its own transaction.
        logger.warning("inbox batch of %d failed (%s); retrying one by one", len(first), exc)
        for key in first:
            await self._commit([p for p in batch if p.key == key])

    async def _insert(self, claims: list[_Claim]) -> dict[str, int]:
        async with session_scope(self._sessions) as session:
            return await insert_new(session=session, rows=[c.values for c in claims])


async def begin_attempt(
    *,
    session: AsyncSession,
    row_id: int,
    expected_attempts: int,
    now: datetime,
    instance_id: str | None = None,
) -> Attempt | None:
    """Count one more attempt, run by `instance_id`, unless another worker already took
    this row (then None)."""
    statement = (
        update(InboxEvent)
        .where(
            InboxEvent.id == row_id,
            InboxEvent.status == InboxStatus.RECEIVED,
            InboxEvent.attempts == expected_attempts,
        )
        .values(attempts=InboxEvent.attempts + 1, updated_at=now, instance_id=instance_id)
        .returning(
            InboxEvent.id,
            InboxEvent.dedupe_key,
            InboxEvent.body,
            InboxEvent.attempts,
            InboxEvent.received_at,
        )
    )
    row = (await session.execute(statement)).one_or_none()
    return Attempt(*row) if row else None


def _mark_statement(*, conditional: bool) -> Update:
    """UPDATE inbox SET status, last_error, updated_at for one row; when `conditional`, only
    while the given attempt is still the current one (not taken over by the sweeper, not
    finished by anyone). Core and built once: building it per event costs more than
    running it."""
    table = cast(Table, InboxEvent.__table__)
    # Parameter names differ from the columns': UPDATE reserves those for its SET clause.
    statement = update(table).where(table.c.id == bindparam("row_id"))
    if conditional:
        statement = statement.where(
            table.c.status == InboxStatus.RECEIVED, table.c.attempts == bindparam("current")
        )
    return statement.values(
        status=bindparam("new_status"), last_error=bindparam("error"), updated_at=bindparam("now")
    )


_MARK = {conditional: _mark_statement(conditional=conditional) for conditional in (False, True)}


async def _mark(
    session: AsyncSession,
    *,
    row_id: int,
    attempts: int | None,
    status: InboxStatus,
    error: str | None,
    now: datetime,
) -> bool:
    params = {"row_id": row_id, "new_status": status, "error": error, "now": now}
    if attempts is not None:
        params["current"] = attempts
    result = await session.execute(_MARK[attempts is not None], params)
    return bool(result.rowcount)  # type: ignore[attr-defined]


async def mark_handled(
    *, session: AsyncSession, row_id: int, now: datetime, attempts: int | None = None
) -> bool:
    """Mark the row handled; with `attempts`, only while that attempt is still the row's
    current one. False when no row matched."""
    return await _mark(
        session, row_id=row_id, attempts=attempts, status=InboxStatus.HANDLED, error=None, now=now
    )


async def mark_failed(
    *, session: AsyncSession, row_id: int, error: str, now: datetime, attempts: int | None = None
) -> bool:
    """Mark the row failed with `error`; `attempts` as for `mark_handled`."""
    return await _mark(
        session,
        row_id=row_id,
        attempts=attempts,
        status=InboxStatus.FAILED,
        error=error[:_ERROR_LIMIT],
        now=now,
    )


async def find_stuck(
    *, session: AsyncSession, now: datetime, limit: int = 100
) -> Sequence[tuple[int, int]]:
    """(id, attempts) of rows left `received` by a worker that is presumably gone."""
    statement = (
        select(InboxEvent.id, InboxEvent.attempts)
        .where(
            InboxEvent.status == InboxStatus.RECEIVED, InboxEvent.updated_at < now - STUCK_AFTER
        )
        .order_by(InboxEvent.id)
        .limit(limit)
    )
    return [(row_id, attempts) for row_id, attempts in (await session.execute(statement)).all()]


async def find_orphaned(
    *,
    session: AsyncSession,
    now: datetime,
    me: str | None,
    first: frozenset[str] = frozenset(),
    limit: int = RESUME_BATCH,
) -> Sequence[tuple[int, int, str]]:
    """(id, attempts, kind) of rows left `received` by an instance that is gone, kinds in
    `first` first, then oldest first. Rows out of attempts are left to `give_up_exhausted`."""
    urgent = case((InboxEvent.kind.in_(first), 0), else_=1) if first else None
    statement = (
        select(InboxEvent.id, InboxEvent.attempts, InboxEvent.kind)
        .where(
            InboxEvent.status == InboxStatus.RECEIVED,
            InboxEvent.attempts < MAX_ATTEMPTS,
            gone(InboxEvent.instance_id, now=now, me=me),
        )
        .order_by(*([urgent] if urgent is not None else []), InboxEvent.id)
        .limit(limit)
    )
    return [(row_id, n, kind) for row_id, n, kind in (await session.execute(statement)).all()]


async def give_up_exhausted(*, session: AsyncSession, now: datetime) -> int:
    """Fail rows whose attempts ran out, so they are shown instead of retried forever."""
    statement = (
        update(InboxEvent)
        .where(
            InboxEvent.status == InboxStatus.RECEIVED,
            InboxEvent.attempts >= MAX_ATTEMPTS,
            InboxEvent.updated_at < now - STUCK_AFTER,
        )
        .values(
            status=InboxStatus.FAILED,
            updated_at=now,
            last_error=f"gave up after {MAX_ATTEMPTS} attempts: the worker never finished",
        )
    )
    return (await session.execute(statement)).rowcount  # type: ignore[attr-defined,no-any-return]


async def purge_expired(*, session: AsyncSession, now: datetime) -> int:
    """Forget handled rows past the retention (failed ones stay for operators)."""
    statement = delete(InboxEvent).where(
        InboxEvent.status == InboxStatus.HANDLED, InboxEvent.received_at < now - KEY_RETENTION
    )
    return (await session.execute(statement)).rowcount  # type: ignore[attr-defined,no-any-return]


async def sweep_once(
    *, sessions: async_sessionmaker[AsyncSession], processor: InboxProcessor, clock: Clock
) -> int:
    """One pass: fail exhausted rows, forget old handled ones, re-run orphaned ones."""
    async with session_scope(sessions) as session:
        now = clock.now()
        given_up = await give_up_exhausted(session=session, now=now)
        await purge_expired(session=session, now=now)
        stuck = await find_stuck(session=session, now=now)
    if given_up:
        logger.warning("inbox: %d rows failed after %d attempts", given_up, MAX_ATTEMPTS)
    await asyncio.gather(
        *(processor.process(row_id, expected_attempts=n, late=True) for row_id, n in stuck)
    )
    return len(stuck)


async def resume_orphaned(
    *,
    sessions: async_sessionmaker[AsyncSession],
    processor: InboxProcessor,
    clock: Clock,
    me: str | None,
) -> int:
    """One pass: run again the rows of instances that are gone (see the module docstring).
    Returns once they ran, so the next pass does not find them again."""
    async with session_scope(sessions) as session:
        orphans = await find_orphaned(
            session=session, now=clock.now(), me=me, first=processor.time_critical_kinds
        )
    if orphans:
        logger.warning("inbox: resuming %d events of a stopped instance", len(orphans))
    await asyncio.gather(
        *(
            processor.process(row_id, expected_attempts=n, late=True, kind=kind)
            for row_id, n, kind in orphans
        )
    )
    return len(orphans)


async def run_sweeper(
    stop: asyncio.Event,
    *,
    sessions: async_sessionmaker[AsyncSession],
    processor: InboxProcessor,
    clock: Clock,
    interval: float = SWEEP_INTERVAL_S,
) -> None:
    """Sweep until `stop` is set; started by the app's lifespan."""
    while True:
        try:
            await sweep_once(sessions=sessions, processor=processor, clock=clock)
        except Exception:
            # The sweeper is the safety net; one bad pass must not end it.
            logger.exception("inbox sweep failed")
        if await sleep_or_stop(stop, interval):
            return


async def run_resumer(
    stop: asyncio.Event,
    *,
    sessions: async_sessionmaker[AsyncSession],
    processor: InboxProcessor,
    clock: Clock,
    me: str | None,
    interval: float = RESUME_INTERVAL_S,
) -> None:
    """Resume gone instances' rows now (a restart's first pass) and every `interval`."""
    resume = partial(resume_orphaned, sessions=sessions, processor=processor, clock=clock, me=me)
    await every(stop, interval, resume, name="inbox resume")
