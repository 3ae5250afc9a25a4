"""Exactly once: WeCom's retries are no-ops, distinct events are never merged."""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.clock import ManualClock
from app.settings import Settings
from app.wecom_sandbox.callbacks import CallbackBuilder
from tests.support import T0, Recorder, contact_added, inbox_rows, running_app, text_message


async def test_retry_three_times_is_one_row_and_one_run(
    settings: Settings,
    clock: ManualClock,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    wecom: CallbackBuilder,
) -> None:
    recorder = Recorder("text")
    callback = wecom.post(text_message("5001"), at=T0)
    async with running_app(
        settings=settings, clock=clock, engine=engine, routers=[recorder.router]
    ) as app:
        for _ in range(3):
            response = await app.deliver(callback)
            assert (response.status_code, response.text) == (200, "success")
    rows = await inbox_rows(sessions)
    assert [(r.dedupe_key, r.status, r.attempts) for r in rows] == [("msg:5001", "handled", 1)]
    assert recorder.seen == ["msg:5001"]


async def test_retry_re_encrypted_by_wecom_is_still_one_row(
    settings: Settings,
    clock: ManualClock,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    wecom: CallbackBuilder,
) -> None:
    # A retry may carry a new nonce and ciphertext; the plaintext identity decides.
    async with running_app(settings=settings, clock=clock, engine=engine) as app:
        for nonce in ("n1", "n2", "n3"):
            await app.deliver(wecom.post(contact_added("wmA"), at=T0, nonce=nonce))
    assert len(await inbox_rows(sessions)) == 1


async def test_two_students_same_staff_same_second_are_two_events(
    settings: Settings,
    clock: ManualClock,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    wecom: CallbackBuilder,
) -> None:
    recorder = Recorder("event.change_external_contact")
    async with running_app(
        settings=settings, clock=clock, engine=engine, routers=[recorder.router]
    ) as app:
        for student in ("wmStudentA", "wmStudentB"):
            response = await app.deliver(wecom.post(contact_added(student, at=T0), at=T0))
            assert response.status_code == 200
    rows = await inbox_rows(sessions)
    assert len(rows) == 2
    assert len(set(recorder.seen)) == 2


async def test_sixteen_concurrent_duplicates_make_one_row(
    settings: Settings,
    clock: ManualClock,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    wecom: CallbackBuilder,
) -> None:
    recorder = Recorder("event.change_external_contact")
    callback = wecom.post(contact_added("wmConcurrent"), at=T0)
    async with running_app(
        settings=settings, clock=clock, engine=engine, routers=[recorder.router]
    ) as app:
        responses = await asyncio.gather(*(app.deliver(callback) for _ in range(16)))
    assert {(r.status_code, r.text) for r in responses} == {(200, "success")}
    rows = await inbox_rows(sessions)
    assert len(rows) == 1
    assert rows[0].status == "handled"
    assert len(recorder.seen) == 1


async def test_replay_older_than_key_retention_is_refused(
    settings: Settings,
    clock: ManualClock,
    engine: AsyncEngine,
    sessions: async_sessionmaker[AsyncSession],
    wecom: CallbackBuilder,
) -> None:
    from app.inbox import KEY_RETENTION

    callback = wecom.post(text_message("6001"), at=T0)
    async with running_app(settings=settings, clock=clock, engine=engine) as app:
        clock.set(T0 + KEY_RETENTION + (KEY_RETENTION / 100))
        response = await app.deliver(callback)
    assert response.status_code == 403
    assert "older" in response.text
    assert await inbox_rows(sessions) == []
