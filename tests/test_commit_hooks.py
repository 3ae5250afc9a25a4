"""`call_after_commit`: the action runs once the session's work is in the database, never for
work rolled back (an outer rollback, a savepoint's, a session closed uncommitted), and a
rolled-back transaction leaves nothing behind for the session's next commit."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.commit_hooks import call_after_commit
from app.models import InboxEvent

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


class Calls:
    """An action that counts its calls."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


async def _write(session: AsyncSession, key: str) -> None:
    session.add(
        InboxEvent(
            dedupe_key=key, kind="test", body="{}", event_time=NOW, received_at=NOW, updated_at=NOW
        )
    )
    await session.flush()


async def _stored(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(InboxEvent)) or 0)


async def test_runs_once_after_the_commit_not_before(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    calls = Calls()
    async with sessions() as session:
        await _write(session, "a")
        call_after_commit(session, calls)
        call_after_commit(session, calls)  # asked twice in one transaction: called once
        await session.flush()
        assert calls.count == 0
        await session.commit()
        assert calls.count == 1
        await _write(session, "b")
        await session.commit()  # the session's next transaction asked for nothing
    assert calls.count == 1
    assert await _stored(sessions) == 2


async def test_a_rolled_back_transaction_never_runs_it_not_even_at_a_later_commit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    calls = Calls()
    async with sessions() as session:
        await _write(session, "a")
        call_after_commit(session, calls)
        await session.rollback()
        await _write(session, "b")
        await session.commit()
    assert calls.count == 0
    assert await _stored(sessions) == 1


async def test_a_session_closed_without_committing_never_runs_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    calls = Calls()
    session = sessions()
    await _write(session, "a")
    call_after_commit(session, calls)
    await session.close()
    await _write(session, "b")
    await session.commit()
    await session.close()
    assert calls.count == 0


async def test_a_released_savepoint_waits_for_the_outer_commit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    calls = Calls()
    async with sessions() as session:
        async with session.begin_nested():
            await _write(session, "a")
            call_after_commit(session, calls)
        assert calls.count == 0  # released, but the outer transaction may still roll back
        await session.commit()
    assert calls.count == 1


async def test_a_released_savepoint_in_a_rolled_back_transaction_never_runs_it(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    calls = Calls()
    async with sessions() as session:
        async with session.begin_nested():
            await _write(session, "a")
            call_after_commit(session, calls)
        await session.rollback()
        await _write(session, "b")
        await session.commit()
    assert calls.count == 0


async def test_asked_in_a_rolled_back_savepoint_it_never_runs(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    calls = Calls()
    async with sessions() as session:
        await _write(session, "a")
        savepoint = await session.begin_nested()
        await _write(session, "b")
        call_after_commit(session, calls)
        await savepoint.rollback()
        await session.commit()
    assert calls.count == 0
    assert await _stored(sessions) == 1


async def test_a_savepoint_rolled_back_inside_keeps_the_outer_request(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    calls = Calls()
    async with sessions() as session:
        await _write(session, "a")
        call_after_commit(session, calls)
        savepoint = await session.begin_nested()
        await _write(session, "b")
        call_after_commit(session, calls)  # already asked for by the outer transaction
        await savepoint.rollback()
        assert calls.count == 0
        await session.commit()
    assert calls.count == 1


async def test_asked_before_the_session_began_it_waits_for_the_next_commit(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    calls, untouched = Calls(), Calls()
    async with sessions() as session:
        call_after_commit(session, calls)
        await _write(session, "a")
        await session.commit()
        call_after_commit(session, untouched)  # committed, the session has no transaction
        await _write(session, "b")
        await session.rollback()
    assert (calls.count, untouched.count) == (1, 0)
