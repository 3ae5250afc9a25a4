"""`enqueue_many`: `enqueue` for many rows, one INSERT per batch, keys still idempotent."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app import outbox
from app.clock import ManualClock
from app.models import OutboxMessage
from app.outbox import NewMessage

COLUMNS = (
    "channel",
    "target",
    "payload",
    "rate_key",
    "status",
    "attempts",
    "max_attempts",
    "not_before",
    "in_doubt",
    "created_at",
    "updated_at",
)


def message(key: str, *, target: str = "robot-1", text: str | None = None) -> NewMessage:
    payload = {"message": {"msgtype": "text", "content": text or key}, "sender": ""}
    return NewMessage(key=key, channel="robot", target=target, payload=payload)


async def enqueue_many(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, rows: list[NewMessage]
) -> int:
    async with sessions.begin() as session:
        return await outbox.enqueue_many(session=session, rows=rows, now=clock.now())


async def contents(sessions: async_sessionmaker[AsyncSession]) -> dict[str, Any]:
    async with sessions() as session:
        rows = await session.execute(select(OutboxMessage.key, OutboxMessage.payload))
        return {key: payload["message"]["content"] for key, payload in rows}


@pytest.fixture
def small_batches(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(outbox, "ENQUEUE_BATCH", 3)
    return 3


async def test_duplicates_within_and_across_batches_are_ignored(
    sessions, clock: ManualClock, small_batches: int
) -> None:
    rows = [
        message("a"),
        message("b"),
        message("a", text="a again, same batch"),
        message("c"),
        message("b", text="b again, next batch"),
        message("d"),
        message("e"),
    ]
    assert await enqueue_many(sessions, clock, rows) == 5
    assert await contents(sessions) == {"a": "a", "b": "b", "c": "c", "d": "d", "e": "e"}


async def test_keys_already_enqueued_are_skipped_and_untouched(
    sessions, clock: ManualClock, small_batches: int
) -> None:
    assert await enqueue_many(sessions, clock, [message("a"), message("b")]) == 2
    clock.advance(timedelta(minutes=1))
    again = [message("a", text="new"), message("c"), message("b", text="new"), message("d")]
    assert await enqueue_many(sessions, clock, again) == 2
    assert await enqueue_many(sessions, clock, again) == 0
    assert await contents(sessions) == {"a": "a", "b": "b", "c": "c", "d": "d"}


async def test_rows_are_those_enqueue_writes(sessions, clock: ManualClock) -> None:
    later = clock.now() + timedelta(minutes=5)
    async with sessions.begin() as session:
        for key, not_before in (("one", None), ("one-later", later)):
            await outbox.enqueue(
                session=session,
                key=key,
                channel="robot",
                target="robot-1",
                payload=message(key, text="hi").payload,
                now=clock.now(),
                not_before=not_before,
                max_attempts=3,
            )
        await outbox.enqueue_many(
            session=session,
            rows=[
                NewMessage("many", "robot", "robot-1", message("x", text="hi").payload, None, 3),
                NewMessage(
                    "many-later", "robot", "robot-1", message("x", text="hi").payload, later, 3
                ),
            ],
            now=clock.now(),
        )
    async with sessions() as session:
        rows = {
            row.key: tuple(getattr(row, c) for c in COLUMNS)
            for row in (await session.execute(select(OutboxMessage))).scalars()
        }
    assert rows["many"] == rows["one"]
    assert rows["many-later"] == rows["one-later"]
    assert rows["one"][COLUMNS.index("rate_key")] == "robot:robot-1"


async def test_one_statement_per_batch(
    sessions, clock: ManualClock, engine: AsyncEngine, small_batches: int
) -> None:
    inserts: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO OUTBOX"):
            inserts.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", seen)
    assert await enqueue_many(sessions, clock, [message(f"k{n}") for n in range(7)]) == 7
    assert await enqueue_many(sessions, clock, []) == 0
    event.remove(engine.sync_engine, "before_cursor_execute", seen)
    assert len(inserts) == 3  # 3 + 3 + 1 rows
