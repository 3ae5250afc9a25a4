"""A CampBot server killed with kill -9 in the middle of a storm of new contacts, and
restarted at once: every student still gets their welcome, once, inside WeCom's 20 s. With
`CAMPBOT_HANDLERS=worker` the process killed is the `campbot worker` running the handlers
(the server goes on answering), and another worker is started.

Real processes: `campbot serve` takes the callbacks, the fake WeCom (`campbot sandbox`) runs
on its own so it outlives the kill and keeps the record of what reached WeCom. WeCom's side
is this test: it adds the contacts, posts the signed callbacks, and, like WeCom, posts a
callback again until it is answered (the server is down for a moment).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.models import Cohort
from app.models import InboxEvent, InboxStatus, OutboxMessage, OutboxStatus
from app.wecom_sandbox.callbacks import CallbackBuilder, SignedCallback
from scripts_library.loader import DEFAULT_PACK, import_pack
from tests.conftest import backend_params, postgres_url
from tests.processes import (
    SandboxServer,
    ServerProcess,
    callback_builder,
    campbot_env,
    contact_added,
    database,
    deliveries,
    free_port,
    migrated_from_empty,
    start_campbot,
    wait_until,
)
from tests.support import AES_KEY, TOKEN

STUDENTS = 100
STAFF = "zhangsan"
STATE = "storm1"
WELCOME = "/cgi-bin/externalcontact/send_welcome_msg"
# Until the kill the fake holds each welcome's answer this long (the send is done first), so
# welcomes are on the wire when the server dies and events queue up behind them.
HOLD_S = 1.0
# WeCom's pace in the storm: this many callbacks in flight, each poster pausing between
# two (about 20 new contacts a second).
POSTERS = 4
PACE_S = 0.2
# How long everything may take after the restart; the sandbox itself refuses a welcome
# later than 20 s after its contact was added, so this is only where waiting stops.
SETTLE_S = 45.0
FINAL = (OutboxStatus.SENT, OutboxStatus.DEAD, OutboxStatus.CANCELLED)


@pytest.fixture(params=backend_params())
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database migrated as `campbot migrate` does."""
    sqlite = f"sqlite+aiosqlite:///{tmp_path / 'storm.db'}"
    url = sqlite if request.param == "sqlite" else postgres_url()
    assert url is not None
    return await migrated_from_empty(url)


async def seed_camp(sessions: async_sessionmaker[AsyncSession]) -> None:
    """A cohort enrolling by the storm's channel, and the default pack's welcome script."""
    now = datetime.now(UTC)
    async with sessions.begin() as session:
        session.add(
            Cohort(
                name="第 9 期",
                camp="跨境电商 7 天实战营",
                start_date=date.today(),
                days=7,
                channel_state=STATE,
                timezone="Asia/Shanghai",
                created_at=now,
                updated_at=now,
            )
        )
        await import_pack(
            session=session, paths=[DEFAULT_PACK / "00_onboarding.yaml"], author="test", now=now
        )


def student(n: int) -> str:
    return f"wmStorm{n:03d}xxxxxxxxxxxxxxxxxxx"


@dataclass
class Storm:
    """WeCom's side: each student adds the staff member, and the callback is posted until
    the server answers it 200 (WeCom retries an unanswered callback)."""

    fake: httpx.AsyncClient
    server_url: str
    builder: CallbackBuilder = field(default_factory=callback_builder)
    answered: int = 0
    codes: dict[str, str] = field(default_factory=dict)  # student -> welcome code

    async def add_contact(self, n: int) -> SignedCallback:
        callback, self.codes[student(n)] = await contact_added(
            self.fake,
            self.builder,
            external_userid=student(n),
            name=f"学员{n}",
            staff=STAFF,
            state=STATE,
        )
        return callback

    async def deliver(self, http: httpx.AsyncClient, callback: SignedCallback) -> None:
        while True:
            try:
                response = await http.post(
                    callback.path, content=callback.body, headers={"content-type": "text/xml"}
                )
            except httpx.TransportError:
                await asyncio.sleep(0.2)  # the server is down: WeCom tries again
                continue
            assert response.status_code == 200, response.text
            self.answered += 1
            return

    async def run(self) -> None:
        numbers = iter(range(STUDENTS))
        async with httpx.AsyncClient(base_url=self.server_url, trust_env=False) as http:

            async def poster() -> None:
                for n in numbers:
                    await self.deliver(http, await self.add_contact(n))
                    await asyncio.sleep(PACE_S)

            await asyncio.gather(*(poster() for _ in range(POSTERS)))


async def welcome_deliveries(fake: httpx.AsyncClient) -> list[dict[str, Any]]:
    return [d for d in await deliveries(fake) if d["channel"] == "welcome"]


async def welcome_rows(sessions: async_sessionmaker[AsyncSession]) -> dict[str, OutboxMessage]:
    async with sessions() as session:
        rows = await session.execute(
            select(OutboxMessage).where(OutboxMessage.channel == "welcome")
        )
        return {row.target: row for row in rows.scalars()}


async def inbox_statuses(sessions: async_sessionmaker[AsyncSession]) -> list[str]:
    async with sessions() as session:
        return list((await session.execute(select(InboxEvent.status))).scalars())


async def mid_storm(
    sessions: async_sessionmaker[AsyncSession], fake: httpx.AsyncClient, storm: Storm
) -> bool:
    """A welcome reached WeCom and waits for its answer, and events wait to be handled."""
    if storm.answered < 20:
        return False
    if InboxStatus.RECEIVED not in await inbox_statuses(sessions):
        return False
    sending = {
        code for code, row in (await welcome_rows(sessions)).items() if row.status == "sending"
    }
    reached = {d["body"]["welcome_code"] for d in await welcome_deliveries(fake)}
    return bool(sending & reached)


async def settled(sessions: async_sessionmaker[AsyncSession], storm: Storm) -> bool:
    if storm.answered < STUDENTS:
        return False
    if set(await inbox_statuses(sessions)) != {InboxStatus.HANDLED}:
        return False
    rows = await welcome_rows(sessions)
    return len(rows) == STUDENTS and all(row.status in FINAL for row in rows.values())


async def progress(sessions: async_sessionmaker[AsyncSession], storm: Storm) -> str:
    rows = await welcome_rows(sessions)
    welcomes = Counter(row.status for row in rows.values())
    events = Counter(await inbox_statuses(sessions))
    return f"answered {storm.answered}/{STUDENTS}; inbox {dict(events)}; welcomes {dict(welcomes)}"


@pytest.mark.parametrize("handlers", ["inline", "worker"])
async def test_kill_9_mid_welcome_storm_and_restart_welcomes_every_student_once(
    tmp_path: Path, database_url: str, sandbox_server: SandboxServer, handlers: str
) -> None:
    env = campbot_env(database_url=database_url, api_base=sandbox_server.base_url)
    env.update(WECOM_TOKEN=TOKEN, WECOM_ENCODING_AES_KEY=AES_KEY, CAMPBOT_HANDLERS=handlers)
    port = free_port()
    async with database(database_url) as sessions, sandbox_server.client() as fake:
        await seed_camp(sessions)
        (await fake.post("/sandbox/users", json={"userid": STAFF})).raise_for_status()
        hold = {"path": WELCOME, "seconds": HOLD_S}
        (await fake.post("/sandbox/delay", json=hold)).raise_for_status()

        first = await asyncio.to_thread(
            ServerProcess.start, tmp_path, env=env, port=port, name="a"
        )
        inline = handlers == "inline"
        # The process running the handlers: the one killed.
        victim = (
            first.process
            if inline
            else start_campbot(["worker"], env=env, cwd=tmp_path, name="worker-a")
        )
        storm = Storm(fake, first.base_url)
        posting = asyncio.create_task(storm.run())
        try:
            await wait_until(
                lambda: mid_storm(sessions, fake, storm),
                what="a welcome on the wire and events queued behind it",
                watch=[first.process, victim],
            )
        finally:
            victim.kill()
        at_kill = {code: row.status for code, row in (await welcome_rows(sessions)).items()}
        in_flight = {code for code, status in at_kill.items() if status == "sending"}
        reached = {d["body"]["welcome_code"] for d in await welcome_deliveries(fake)}
        assert in_flight & reached
        assert InboxStatus.RECEIVED in await inbox_statuses(sessions)
        assert storm.answered < STUDENTS, "the kill came after the storm"

        (await fake.post("/sandbox/clear-failures")).raise_for_status()  # WeCom answers fast
        if inline:
            second = await asyncio.to_thread(
                ServerProcess.start, tmp_path, env=env, port=port, name="b"
            )
            running = [second.process]
        else:
            running = [
                first.process,
                start_campbot(["worker"], env=env, cwd=tmp_path, name="worker-b"),
            ]
        try:
            await wait_until(
                lambda: settled(sessions, storm),
                what="every event handled and every welcome settled after the restart",
                within=SETTLE_S,
                watch=running,
            )
            await posting
        except AssertionError as exc:
            raise AssertionError(f"{await progress(sessions, storm)}\n{exc}") from None
        finally:
            posting.cancel()
            await asyncio.gather(*(asyncio.to_thread(p.stop) for p in running))
        rows = await welcome_rows(sessions)
        delivered = await welcome_deliveries(fake)

    # Each student got exactly one welcome, with their own code, and the outbox says so.
    dead = {code: row.last_error for code, row in rows.items() if row.status != "sent"}
    assert dead == {}
    assert sorted(d["target"] for d in delivered) == sorted(storm.codes)
    assert {d["target"]: d["body"]["welcome_code"] for d in delivered} == storm.codes
    # Only a welcome on the wire at the kill was sent again; where it had reached WeCom,
    # WeCom refused the repeat (41051), which recorded it sent.
    assert {code for code, row in rows.items() if row.in_doubt} <= in_flight
    confirmed = {code: (row.status, row.last_errcode) for code, row in rows.items()}
    assert {code: confirmed[code] for code in in_flight & reached} == dict.fromkeys(
        in_flight & reached, ("sent", 41051)
    )
    assert {code for code, row in rows.items() if row.last_errcode} <= in_flight & reached
