"""The sender's bookkeeping, a chunk of rows at a time, in as few round trips as it takes.

A worker sends its claimed rows a chunk (SEND_CHUNK rows) at a time, the chunk's sends
at once: between two chunks it records the last chunk's rows `sent` and marks the next
chunk's `sending`, in one commit. So a worker never has more than one chunk on its way,
and a kill can repeat only those rows, each counted in_doubt. The statements are built
once, with bound parameters: building them per row cost more than the database's work.

On PostgreSQL the two updates are one statement (a data-modifying CTE over arrays) sent
on a connection in autocommit mode: one round trip per chunk, atomic as a statement is.
On SQLite (in process, no network) they are a few statements in one transaction.
A send WeCom refused is recorded by the sender itself (`app.sender._apply`): rare, and
it needs the row's attempts and error codes.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import BigInteger, DateTime, String, Table, bindparam, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker

from app.db import UTCDateTime
from app.models import OutboxMessage, OutboxStatus
from app.outbox import RELEASED

_TABLE = cast(Table, OutboxMessage.__table__)

# Sent rows, while they are still this worker's (another sender may have recovered one).
_SENT = (
    update(_TABLE)
    .where(
        _TABLE.c.id == bindparam("done_id"),
        _TABLE.c.status == OutboxStatus.SENDING,
        _TABLE.c.claimed_by == bindparam("worker"),
    )
    .values(
        status=OutboxStatus.SENT,
        sent_at=bindparam("now"),
        wecom_msgid=bindparam("msgid"),
        attempts=_TABLE.c.attempts + 1,
        updated_at=bindparam("now"),
        **RELEASED,
    )
)
# The next rows on their way, those this worker still holds (one lease for them all).
_SENDING = (
    update(_TABLE)
    .where(
        _TABLE.c.id.in_(bindparam("next_ids", expanding=True)),
        _TABLE.c.status == OutboxStatus.CLAIMED,
        _TABLE.c.claimed_by == bindparam("worker"),
    )
    .values(
        status=OutboxStatus.SENDING,
        lease_until=bindparam("lease_until"),
        updated_at=bindparam("now"),
    )
    .returning(_TABLE.c.id)
)
_BOTH = text(
    f"""
WITH sent AS (
    UPDATE {_TABLE.name} AS o SET status = '{OutboxStatus.SENT}', sent_at = :now,
        wecom_msgid = d.msgid, attempts = o.attempts + 1, updated_at = :now,
        {", ".join(f"{column} = NULL" for column in RELEASED)}
    FROM unnest(CAST(:done_ids AS BIGINT[]), CAST(:msgids AS VARCHAR[])) AS d (id, msgid)
    WHERE o.id = d.id AND o.status = '{OutboxStatus.SENDING}' AND o.claimed_by = :worker
    RETURNING o.id
)
UPDATE {_TABLE.name} AS o SET status = '{OutboxStatus.SENDING}',
    lease_until = n.lease_until, updated_at = :now
FROM unnest(CAST(:next_ids AS BIGINT[]), CAST(:leases AS TIMESTAMPTZ[]))
    AS n (id, lease_until)
WHERE o.id = n.id AND o.status = '{OutboxStatus.CLAIMED}' AND o.claimed_by = :worker
RETURNING o.id
"""
).bindparams(
    bindparam("now", type_=UTCDateTime()),
    bindparam("worker", type_=String()),
    bindparam("done_ids", type_=ARRAY(BigInteger())),
    bindparam("msgids", type_=ARRAY(String())),
    bindparam("next_ids", type_=ARRAY(BigInteger())),
    bindparam("leases", type_=ARRAY(DateTime(timezone=True))),
)

Sent = tuple[int, str | None]  # a row WeCom accepted, and the msgid it gave


class Steps:
    """One worker's steps over its batch: `step` records the sent rows and marks the next."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        worker: str,
        connection: AsyncConnection | None,
    ) -> None:
        self._sessions = sessions
        self._worker = worker
        self._connection = connection  # PostgreSQL, autocommit

    async def step(
        self, *, sent: Sequence[Sent], next_rows: Sequence[tuple[int, datetime]], now: datetime
    ) -> set[int]:
        """Record `sent` and mark `next_rows` (id, lease until) sending, in one commit; the
        ids of the next rows that were still this worker's to send."""
        if self._connection is not None:
            params: dict[str, Any] = {
                "worker": self._worker,
                "now": now,
                "done_ids": [row_id for row_id, _ in sent],
                "msgids": [msgid for _, msgid in sent],
                "next_ids": [row_id for row_id, _ in next_rows],
                "leases": [lease for _, lease in next_rows],
            }
            return set((await self._connection.execute(_BOTH, params)).scalars())
        async with self._sessions.begin() as session:
            connection = await session.connection()
            if sent:
                done = [
                    {"done_id": i, "msgid": m, "worker": self._worker, "now": now} for i, m in sent
                ]
                await connection.execute(_SENT, done)
            marked: set[int] = set()
            for lease, ids in _by_lease(next_rows).items():
                params = {
                    "next_ids": ids,
                    "lease_until": lease,
                    "worker": self._worker,
                    "now": now,
                }
                marked.update((await connection.execute(_SENDING, params)).scalars())
            return marked


def _by_lease(rows: Sequence[tuple[int, datetime]]) -> dict[datetime, list[int]]:
    grouped: dict[datetime, list[int]] = {}
    for row_id, lease in rows:
        grouped.setdefault(lease, []).append(row_id)
    return grouped


@contextlib.asynccontextmanager
async def steps(sessions: async_sessionmaker[AsyncSession], worker: str) -> AsyncIterator[Steps]:
    """Steps for one batch; on PostgreSQL they hold one pooled connection meanwhile."""
    engine = sessions.kw.get("bind")
    if not isinstance(engine, AsyncEngine) or engine.dialect.name != "postgresql":
        yield Steps(sessions, worker, None)
        return
    async with engine.connect() as connection:
        autocommit = await connection.execution_options(isolation_level="AUTOCOMMIT")
        yield Steps(sessions, worker, autocommit)
