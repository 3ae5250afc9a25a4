"""The inbox: every callback recorded once under its dedupe key, and the queue
that handlers are run from (ARCHITECTURE §1, rules 1–2).

A row goes `received → handled | failed`. Handlers run after WeCom has its
answer; if the process dies first, the row is still `received` and is run again,
a bounded number of times. Each row names the instance running it (app.instances):
rows of an instance that is gone are resumed within seconds, time-critical events first,
so a welcome still goes out inside its 20 s; the slower sweep re-runs rows left
`received` for STUCK_AFTER whatever their instance (a transient error, a handler's
RetryLater). Both loops are `app.inbox_recovery`.

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
from typing import Any, Protocol, cast

from sqlalchemy import Table, Update, bindparam, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import dialect_insert, is_transient, session_scope
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


# An `Attempt`'s fields, in its order: what a statement returns to build one.
ATTEMPT_COLUMNS = (
    InboxEvent.id,
    InboxEvent.dedupe_key,
    InboxEvent.body,
    InboxEvent.attempts,
    InboxEvent.received_at,
)


class InboxProcessor(Protocol):
    """Runs the handlers for one inbox row (implemented by `bots.dispatch`)."""

    @property
    def handled_kinds(self) -> frozenset[str]:
        """Event kinds some handler registers for. An event of another kind has nothing to
        run: intake records it `handled` at once (`Intake.claim(handled=True)`)."""
        ...

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

    @property
    def waiting(self) -> int:
        """Runs queued and not started yet (a worker takes more rows below a level)."""
        ...


def _row_values(
    event: WeComEvent,
    body: str,
    now: datetime,
    attempts: int,
    instance_id: str | None,
    status: InboxStatus = InboxStatus.RECEIVED,
) -> dict[str, Any]:
    return {
        "dedupe_key": event.dedupe_key,
        "kind": event.kind,
        "body": body,
        "event_time": event.created_at or now,
        "status": status,
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

    async def claim(
        self, *, event: WeComEvent, body: str, now: datetime, handled: bool = False
    ) -> Attempt | None:
        """The new row, with its first attempt counted, or None when the key is known.
        `handled`: the event has no handler to run; its row is recorded `handled`.

        Returns only after the row is committed; raises what the insert raised.
        """
        status = InboxStatus.HANDLED if handled else InboxStatus.RECEIVED
        pending = _Claim(
            _row_values(
                event, body, now, attempts=1, instance_id=self._instance_id, status=status
            ),
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


async def received_attempts(*, session: AsyncSession, ids: Sequence[int]) -> list[Attempt]:
    """The rows among `ids` still `received`, each as its current attempt, in id order."""
    statement = (
        select(*ATTEMPT_COLUMNS)
        .where(InboxEvent.id.in_(ids), InboxEvent.status == InboxStatus.RECEIVED)
        .order_by(InboxEvent.id)
    )
    return [Attempt(*row) for row in (await session.execute(statement)).all()]


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
        .returning(*ATTEMPT_COLUMNS)
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


async def mark_handled_many(
    *, session: AsyncSession, attempts: Sequence[tuple[int, int]], now: datetime
) -> set[int]:
    """`mark_handled` for several (row id, attempt) pairs in one statement: the ids of the
    rows that were still at that attempt, and are now handled."""
    table = cast(Table, InboxEvent.__table__)
    statement = (
        update(table)
        .where(
            table.c.status == InboxStatus.RECEIVED,
            tuple_(table.c.id, table.c.attempts).in_(attempts),
        )
        .values(status=InboxStatus.HANDLED, last_error=None, updated_at=now)
        .returning(table.c.id)
    )
    return set((await session.execute(statement)).scalars())


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
