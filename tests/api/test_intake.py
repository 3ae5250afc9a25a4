"""Group commit at intake: concurrent callbacks share one insert and one commit, each answered
only after it; a key is new exactly once, whether its retry lands in the same batch or a later
one; one bad row does not fail its neighbours, a transient error fails the batch as a whole."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import inbox
from app.clock import ManualClock
from app.wecom.events import parse_event
from tests.support import inbox_rows, text_message

Sessions = async_sessionmaker[AsyncSession]


class CountingInserts:
    """Wraps `inbox.insert_new`: records each batch's keys, and can fail chosen ones."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, *, fail: dict[str, Exception]) -> None:
        self.batches: list[list[str]] = []
        self.fail = fail
        self._real = inbox.insert_new
        monkeypatch.setattr(inbox, "insert_new", self)

    async def __call__(self, *, session: AsyncSession, rows: Sequence[dict[str, Any]]) -> Any:
        keys = [row["dedupe_key"] for row in rows]
        self.batches.append(keys)
        for key in keys:
            if key in self.fail:
                raise self.fail[key]
        return await self._real(session=session, rows=rows)


async def _claim_all(intake: inbox.Intake, bodies: list[str], clock: ManualClock) -> list[Any]:
    return await asyncio.gather(
        *(intake.claim(event=parse_event(b), body=b, now=clock.now()) for b in bodies),
        return_exceptions=True,
    )


async def test_concurrent_claims_share_one_commit_and_duplicates_within_it_are_retries(
    sessions: Sessions, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    inserts = CountingInserts(monkeypatch, fail={})
    intake = inbox.Intake(sessions)
    bodies = [text_message("1"), text_message("2"), text_message("1"), text_message("3")]

    answers = await _claim_all(intake, bodies, clock)

    assert len(inserts.batches) == 1  # all four were queued before the writer ran
    assert inserts.batches[0] == ["msg:1", "msg:2", "msg:3"]  # the retry is not sent
    first, second, retry, third = answers
    assert retry is None
    assert [a.dedupe_key for a in (first, second, third)] == ["msg:1", "msg:2", "msg:3"]
    rows = await inbox_rows(sessions)
    assert [(r.id, r.status, r.attempts) for r in rows] == [
        (first.id, "received", 1),  # the first attempt is counted at insert
        (second.id, "received", 1),
        (third.id, "received", 1),
    ]


async def test_a_key_already_recorded_is_a_retry_in_a_later_batch(
    sessions: Sessions, clock: ManualClock
) -> None:
    intake = inbox.Intake(sessions)
    body = text_message("9")
    first = await intake.claim(event=parse_event(body), body=body, now=clock.now())
    again = await intake.claim(event=parse_event(body), body=body, now=clock.now())
    assert first is not None
    assert again is None
    assert len(await inbox_rows(sessions)) == 1


async def test_batches_are_capped_and_claims_arriving_meanwhile_form_the_next(
    sessions: Sessions, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    inserts = CountingInserts(monkeypatch, fail={})
    intake = inbox.Intake(sessions, max_batch=2)
    answers = await _claim_all(intake, [text_message(str(n)) for n in range(5)], clock)
    assert [len(keys) for keys in inserts.batches] == [2, 2, 1]
    assert all(isinstance(a, inbox.Attempt) for a in answers)
    assert len(await inbox_rows(sessions)) == 5


async def test_one_bad_row_fails_alone(
    sessions: Sessions, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = IntegrityError("INSERT", {}, Exception("a constraint said no"))
    inserts = CountingInserts(monkeypatch, fail={"msg:2": bad})
    intake = inbox.Intake(sessions)

    answers = await _claim_all(intake, [text_message(n) for n in ("1", "2", "3")], clock)

    assert inserts.batches == [["msg:1", "msg:2", "msg:3"], ["msg:1"], ["msg:2"], ["msg:3"]]
    assert isinstance(answers[0], inbox.Attempt)
    assert answers[1] is bad  # that request answers 500; WeCom retries it
    assert isinstance(answers[2], inbox.Attempt)
    assert [r.dedupe_key for r in await inbox_rows(sessions)] == ["msg:1", "msg:3"]


async def test_a_transient_error_fails_the_whole_batch_without_retrying_row_by_row(
    sessions: Sessions, clock: ManualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
    inserts = CountingInserts(monkeypatch, fail={"msg:1": locked})
    intake = inbox.Intake(sessions)

    answers = await _claim_all(intake, [text_message(n) for n in ("1", "2")], clock)

    assert inserts.batches == [["msg:1", "msg:2"]]
    assert answers == [locked, locked]
    assert await inbox_rows(sessions) == []
    # The writer is gone with its batch; the next claim starts a new one.
    body = text_message("2")
    assert await intake.claim(event=parse_event(body), body=body, now=clock.now()) is not None


async def test_a_cancelled_request_does_not_stop_its_batch(
    sessions: Sessions, clock: ManualClock
) -> None:
    intake = inbox.Intake(sessions)
    bodies = [text_message("1"), text_message("2")]
    tasks = [
        asyncio.ensure_future(intake.claim(event=parse_event(b), body=b, now=clock.now()))
        for b in bodies
    ]
    await asyncio.sleep(0)  # both queued
    tasks[0].cancel()
    assert isinstance(await tasks[1], inbox.Attempt)
    # The cancelled request's row is in (WeCom's retry of it will be a duplicate, and the
    # sweeper runs its handlers): recorded once either way.
    assert [r.dedupe_key for r in await inbox_rows(sessions)] == ["msg:1", "msg:2"]
