"""`quota.spend_many` (a merged 群发's students at once) grants exactly what `quota.spend`
one target at a time grants and writes the same rows, and two instances spending for the
same students at once never spend a slot twice."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import quota
from app.models import MassSendQuotaSlot
from app.quota import QuotaMode
from tests.test_quota import two_instances

Sessions = async_sessionmaker[AsyncSession]
KEY = "reminder:customer_single:zhangsan:abc"
# Monday 02:00 in Shanghai, still Sunday in Los Angeles: the two calendars' weeks differ.
AT = datetime(2026, 3, 8, 18, 0, tzinfo=UTC)
EARLIER = datetime(2026, 3, 4, 2, 0, tzinfo=UTC)  # the week before, on both calendars
SHANGHAI, LOS_ANGELES = "Asia/Shanghai", "America/Los_Angeles"
WEEK = QuotaMode.WEEK_7


def _zone(i: int) -> str:
    return LOS_ANGELES if i % 4 == 3 else SHANGHAI


async def _seed(sessions: Sessions, prefix: str, count: int) -> dict[str, str]:
    """`count` targets (→ their zones): fresh, partly used with gaps, used up, held under
    KEY, slots in last week's window; the same for any prefix."""
    async with sessions.begin() as session:
        for i in range(count):
            target, tz = f"{prefix}{i}", _zone(i)
            for used in range(i % 9):  # 0..8 tries: from fresh to used up (7 a week)
                await quota.spend(
                    session=session, target=target, mode=WEEK, tz=tz, now=AT, outbox_key=f"o{used}"
                )
            if i % 3 == 1:  # a gap: the first free slot is not the count + 1
                await quota.release(session=session, outbox_key="o1", targets=[target])
            if i % 5 == 0:
                await quota.spend(
                    session=session, target=target, mode=WEEK, tz=tz, now=AT, outbox_key=KEY
                )
            if i % 7 == 2:
                await quota.spend(
                    session=session, target=target, mode=WEEK, tz=tz, now=EARLIER, outbox_key="w"
                )
    return {f"{prefix}{i}": _zone(i) for i in range(count)}


async def _rows(sessions: Sessions, prefix: str) -> list[tuple[object, ...]]:
    async with sessions() as session:
        rows = await session.execute(
            select(
                MassSendQuotaSlot.target,
                MassSendQuotaSlot.mode,
                MassSendQuotaSlot.window_start,
                MassSendQuotaSlot.n,
                MassSendQuotaSlot.outbox_key,
                MassSendQuotaSlot.source,
                MassSendQuotaSlot.spent_at,
            ).where(MassSendQuotaSlot.target.startswith(prefix))
        )
        return sorted((row[0].removeprefix(prefix), *row[1:]) for row in rows)


@pytest.mark.parametrize("chunk", [quota.SPEND_CHUNK, 5])
async def test_spend_many_grants_and_writes_what_spend_one_by_one_does(
    sessions, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(quota, "SPEND_CHUNK", chunk)  # 5: the targets in eight chunks
    one, many = await _seed(sessions, "one:", 36), await _seed(sessions, "many:", 36)
    assert await _rows(sessions, "one:") == await _rows(sessions, "many:")

    granted_one: set[str] = set()
    async with sessions.begin() as session:
        for target, tz in one.items():
            if await quota.spend(
                session=session, target=target, mode=WEEK, tz=tz, now=AT, outbox_key=KEY
            ):
                granted_one.add(target.removeprefix("one:"))
    async with sessions.begin() as session:
        granted = await quota.spend_many(
            session=session, targets=many, mode=WEEK, now=AT, outbox_key=KEY
        )
    granted_many = {target.removeprefix("many:") for target in granted}

    assert granted_many == granted_one
    # Used up (7 or 8 tries) without a gap: refused, 35 though it tried under KEY (full then).
    refused = {"8", "17", "26", "35"}
    assert granted_many == {str(i) for i in range(36)} - refused
    assert await _rows(sessions, "one:") == await _rows(sessions, "many:")


async def test_spending_again_under_the_key_takes_nothing(sessions) -> None:
    targets = {"wmA": SHANGHAI, "wmB": LOS_ANGELES}
    for _ in range(2):
        async with sessions.begin() as session:
            granted = await quota.spend_many(
                session=session, targets=targets, mode=QuotaMode.DAY_1, now=AT, outbox_key=KEY
            )
        assert granted == set(targets)
    async with sessions.begin() as session:
        other = await quota.spend_many(
            session=session, targets=targets, mode=QuotaMode.DAY_1, now=AT, outbox_key="other"
        )
        assert (
            await quota.spend_many(
                session=session, targets={}, mode=QuotaMode.DAY_1, now=AT, outbox_key="none"
            )
            == set()
        )
    assert other == set()  # one a day, already spent under KEY
    assert [row[3] for row in await _rows(sessions, "wm")] == [1, 1]


@pytest.mark.postgres
async def test_two_instances_spending_for_the_same_students_never_spend_a_slot_twice() -> None:
    async with two_instances() as makers:
        students = [f"wmRace{i:02}" for i in range(30)]

        async def spend(n: int) -> set[str]:
            # Overlapping sets: every call has the first ten, then a different stretch.
            targets = dict.fromkeys(students[:10] + students[10 + n : 20 + n], SHANGHAI)
            async with makers[n % 2].begin() as session:
                return await quota.spend_many(
                    session=session, targets=targets, mode=WEEK, now=AT, outbox_key=f"task{n}"
                )

        granted = await asyncio.gather(*(spend(n) for n in range(10)))
        async with makers[0]() as session:
            rows = (
                await session.execute(
                    select(
                        MassSendQuotaSlot.target, MassSendQuotaSlot.n, MassSendQuotaSlot.outbox_key
                    )
                )
            ).all()
        slots: dict[str, list[int]] = {}
        for target, n, _ in rows:
            slots.setdefault(target, []).append(n)
        wanted = {
            s: sum(s in set(students[:10] + students[10 + n : 20 + n]) for n in range(10))
            for s in students
        }
        # Every slot once, none twice, and as many as asked for up to the week's 7.
        assert {s: sorted(ns) for s, ns in slots.items()} == {
            s: list(range(1, min(w, 7) + 1)) for s, w in wanted.items() if w
        }
        # What each call was told it got is exactly what it holds.
        for n, got in enumerate(granted):
            assert got == {t for t, _, key in rows if key == f"task{n}"}
