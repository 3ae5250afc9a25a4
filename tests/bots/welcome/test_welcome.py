"""The welcome, end to end: WeCom's callbacks through /wecom/callback, CampBot's sends to the
sandbox (which enforces the WelcomeCode's 20 seconds and single use)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import schedules.models  # noqa: F401 - a member joining re-plans schedules: their tables
from app.admin.h5_tokens import member_url
from app.admin.models import Cohort, CohortMember
from app.clock import ManualClock
from app.models import Member, OutboxMessage
from app.sender import Sender
from app.settings import Settings
from app.wecom.crypto import CallbackCrypto
from app.wecom_sandbox import callback_xml
from app.wecom_sandbox.callbacks import CallbackBuilder
from app.wecom_sandbox.sender import CallbackSender, SentCallback
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from bots.welcome import lookups as welcome_lookups
from scripts_library.loader import DEFAULT_PACK, import_pack
from tests.support import AES_KEY, AGENT_ID, CORP_ID, TOKEN, AppHarness, inbox_rows, running_app

Sessions = async_sessionmaker[AsyncSession]
STUDENT = "wmStudentLinxxxxxxxxxxxxxxxxxx"
STAFF = "zhangsan"
STATE = "camp6"
BASE_URL = "https://camp.example.com"
WELCOME = "externalcontact/send_welcome_msg"


@dataclass
class Camp:
    harness: AppHarness
    sandbox: SandboxState
    wecom: CallbackSender
    sessions: Sessions
    clock: ManualClock

    @property
    def sender(self) -> Sender:
        sender: Sender | None = self.harness.app.state.runtime.sender
        assert sender is not None
        return sender

    def welcome_calls(self) -> list[Any]:
        return self.sandbox.calls_to(WELCOME)

    async def add(self, name: str = "小林", state: str = STATE) -> SentCallback:
        return await self.wecom.add_external_contact(STUDENT, userid=STAFF, name=name, state=state)

    async def outbox(self, channel: str) -> list[OutboxMessage]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(OutboxMessage).where(OutboxMessage.channel == channel)
            )
            return list(rows.scalars())

    async def member(self) -> Member:
        async with self.sessions() as session:
            query = select(Member).where(Member.external_userid == STUDENT)
            return (await session.execute(query)).scalar_one()

    async def cohorts_of_student(self) -> list[str]:
        async with self.sessions() as session:
            rows = await session.execute(
                select(Cohort.channel_state)
                .join(CohortMember, CohortMember.cohort_id == Cohort.id)
                .join(Member, Member.id == CohortMember.member_id)
                .where(Member.external_userid == STUDENT)
            )
            return list(rows.scalars())


async def _seed(sessions: Sessions, clock: ManualClock, *, script: bool) -> None:
    now = clock.now()
    async with sessions.begin() as session:
        session.add(
            Cohort(
                name="第 6 期",
                camp="跨境电商 7 天实战营",
                start_date=date(2026, 3, 2),
                days=7,
                channel_state=STATE,
                timezone="Asia/Shanghai",
                created_at=now,
                updated_at=now,
            )
        )
        if script:  # the default pack's welcome, as operators get it
            await import_pack(
                session=session,
                paths=[DEFAULT_PACK / "00_onboarding.yaml"],
                author="test",
                now=now,
            )


@pytest.fixture
def settings() -> Settings:
    return Settings(
        WECOM_CORP_ID=CORP_ID,
        WECOM_TOKEN=TOKEN,
        WECOM_ENCODING_AES_KEY=AES_KEY,
        WECOM_AGENT_ID=AGENT_ID,
        WECOM_SECRET="not-a-real-secret",
        PUBLIC_BASE_URL=BASE_URL,
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def script() -> bool:
    return True


@pytest.fixture
async def camp(
    settings: Settings,
    clock: ManualClock,
    engine: AsyncEngine,
    sessions: Sessions,
    script: bool,
) -> AsyncIterator[Camp]:
    sandbox = SandboxState(corp_id=CORP_ID, apps={AGENT_ID: "not-a-real-secret"}, clock=clock)
    sandbox.add_user(STAFF, "张老师")
    await _seed(sessions, clock, script=script)
    async with running_app(
        settings=settings,
        clock=clock,
        engine=engine,
        wecom_transport=sandbox_transport(sandbox),
        sender=False,  # the tests push rows themselves, so nothing races them
    ) as harness:
        # A running CampBot has a token in memory (every send refreshes it). A cold one would
        # cost the first welcome its name on SQLite (see bots/welcome/lookups.py).
        await harness.app.state.runtime.wecom.tokens.get()
        wecom = CallbackSender(
            sandbox, harness.client, token=TOKEN, encoding_aes_key=AES_KEY, agent_id=AGENT_ID
        )
        yield Camp(harness, sandbox, wecom, sessions, clock)


async def test_the_welcome_goes_out_at_once_with_name_and_personal_link(camp: Camp) -> None:
    sent = await camp.add(name="小林")

    [call] = camp.welcome_calls()
    assert call.errcode == 0  # the sandbox refuses a code older than 20 s or used before
    assert call.json["welcome_code"] == sent.welcome_code
    member = await camp.member()
    async with camp.sessions() as session:
        h5_url = await member_url(
            session=session, member_id=member.id, public_base_url=BASE_URL, now=camp.clock.now()
        )
    assert h5_url.startswith(f"{BASE_URL}/h5/m/")
    text = call.json["text"]["content"]
    assert text.startswith("小林你好呀，我是助教老师，跨境电商 7 天实战营第 6 期的助教")
    assert h5_url in text
    [card] = call.json["attachments"]
    assert card["msgtype"] == "link"
    assert card["link"]["url"] == h5_url
    assert card["link"]["title"]
    assert [d.target for d in camp.sandbox.delivered("welcome")] == [STUDENT]

    [row] = await camp.outbox("welcome")
    assert (row.key, row.status, row.attempts) == (
        f"welcome:{STUDENT}:{sent.welcome_code}",
        "sent",
        1,
    )
    assert (member.name, await camp.cohorts_of_student()) == ("小林", [STATE])
    assert {r.status for r in await inbox_rows(camp.sessions)} == {"handled"}


async def test_the_same_callback_three_times_welcomes_once(camp: Camp) -> None:
    sent = await camp.add()
    await camp.wecom.redeliver(sent)
    await camp.wecom.redeliver(sent)
    assert [r.response.status_code for r in camp.wecom.sent] == [200, 200, 200]
    assert len(camp.welcome_calls()) == 1
    assert len(await camp.outbox("welcome")) == 1
    assert len(camp.sandbox.delivered("welcome")) == 1


@pytest.mark.parametrize("errcode", [41050, 41051])
async def test_a_refused_welcome_is_dead_and_never_retried(camp: Camp, errcode: int) -> None:
    camp.sandbox.fail_next(WELCOME, errcode)
    await camp.add()

    [row] = await camp.outbox("welcome")
    assert (row.status, row.last_errcode, row.attempts) == ("dead", errcode, 1)
    camp.clock.advance(timedelta(minutes=10))
    await camp.sender.run_once()
    assert len(camp.welcome_calls()) == 1
    assert camp.sandbox.delivered("welcome") == []


async def test_a_code_that_expired_is_recorded_not_sent(camp: Camp) -> None:
    # WeCom's callback arrives 30 s after the contact was added (a delay, a retry).
    added_at = camp.clock.now() - timedelta(seconds=30)
    camp.sandbox.add_external_contact(STUDENT, "小林", STAFF, STATE)
    code = camp.sandbox.issue_welcome_code(STAFF, STUDENT)
    plaintext = callback_xml.external_contact_added(
        CORP_ID, userid=STAFF, external_userid=STUDENT, state=STATE, welcome_code=code, at=added_at
    )
    builder = CallbackBuilder(
        CallbackCrypto(token=TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID)
    )
    response = await camp.harness.deliver(builder.post(plaintext, at=camp.clock.now()))

    assert response.status_code == 200
    assert camp.welcome_calls() == []
    [row] = await camp.outbox("welcome")
    assert (row.key, row.status, row.attempts) == (f"welcome:{STUDENT}:{code}", "dead", 0)
    assert (row.last_error or "").startswith("欢迎语已过期（超过 20 秒）")
    # Everything else about joining still happened.
    assert (await camp.member()).name == "小林"
    assert await camp.cohorts_of_student() == [STATE]
    await camp.sender.run_once()
    assert camp.welcome_calls() == []


async def test_a_slow_name_lookup_never_costs_the_window(
    camp: Camp, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(welcome_lookups, "LOOKUP_TIMEOUT_S", 0.05)
    camp.sandbox.delay("externalcontact/get", 5.0)
    await camp.add(name="小林")

    [call] = camp.welcome_calls()
    assert call.errcode == 0
    assert call.json["text"]["content"].startswith("同学你好呀")
    assert (await camp.member()).name is None


async def test_the_student_is_tagged_by_channel_when_the_tag_exists(camp: Camp) -> None:
    tag_id = camp.sandbox.add_corp_tag("渠道", STATE)
    await camp.add()
    [row] = await camp.outbox("mark_tag")
    assert (row.key, row.status) == (f"tag:{STUDENT}:{STATE}", "pending")
    await camp.sender.run_once()
    assert camp.sandbox.external_contacts[STUDENT].follow[STAFF].tag_ids == [tag_id]


async def test_no_channel_tag_no_tagging(camp: Camp) -> None:
    camp.sandbox.add_corp_tag("渠道", "another-channel")
    await camp.add()
    assert len(camp.welcome_calls()) == 1
    assert await camp.outbox("mark_tag") == []


async def test_a_contact_from_no_cohort_channel_is_not_welcomed(camp: Camp) -> None:
    await camp.add(state="personal-qr")
    assert camp.welcome_calls() == []
    assert await camp.outbox("welcome") == []
    assert await camp.cohorts_of_student() == []


@pytest.mark.parametrize("script", [False])
async def test_without_a_welcome_script_the_miss_is_recorded(camp: Camp) -> None:
    await camp.add()
    assert camp.welcome_calls() == []
    [row] = await camp.outbox("welcome")
    assert row.status == "dead"
    assert "没有欢迎语话术「welcome」" in (row.last_error or "")


async def test_a_student_who_leaves_is_reported_to_their_staff_member_once(camp: Camp) -> None:
    await camp.add(name="小林")
    camp.clock.advance(timedelta(hours=1))
    left = await camp.wecom.del_follow_user(STUDENT, userid=STAFF)
    await camp.wecom.redeliver(left)
    await camp.sender.run_once()

    sends = [c for c in camp.sandbox.calls_to("message/send") if c.errcode == 0]
    assert len(sends) == 1
    body = sends[0].json
    assert body["touser"] == STAFF
    assert body["text"]["content"].startswith(
        "【流失提醒】学员「小林」（跨境电商 7 天实战营第 6 期）于 3月1日 18:00 删除了你。"
    )
    assert [d.recipients for d in camp.sandbox.delivered("message")] == [(STAFF,)]
    [row] = await camp.outbox("app_message")
    assert row.key == f"lost:{STUDENT}:{int(camp.clock.now().timestamp())}"
    assert (await camp.member()).status == "lost"


async def test_the_name_lookup_holds_no_database_while_it_waits(camp: Camp) -> None:
    # externalcontact/get answers after 1 s, inside the 2 s budget.
    camp.sandbox.delay("externalcontact/get", 1.0)
    adding = asyncio.create_task(camp.add(name="小林"))
    await asyncio.sleep(0.3)  # the lookup is under way

    started = time.monotonic()
    async with camp.sessions.begin() as session:  # another write, e.g. intake's next claim
        session.add(
            Member(
                external_userid="wmOther", created_at=camp.clock.now(), updated_at=camp.clock.now()
            )
        )
    assert time.monotonic() - started < 0.5
    assert not adding.done()

    await adding
    [call] = camp.welcome_calls()
    assert call.errcode == 0
    assert call.json["text"]["content"].startswith("小林你好呀")


async def test_a_slow_token_refresh_still_brings_the_name(camp: Camp) -> None:
    # The token has expired: the lookup's first call refreshes it, and gettoken is slow.
    camp.clock.advance(timedelta(hours=3))
    camp.sandbox.delay("gettoken", 0.5)
    refreshes = camp.sandbox.gettoken_count
    await camp.add(name="小林")

    assert camp.sandbox.gettoken_count == refreshes + 1
    [call] = camp.welcome_calls()
    assert call.errcode == 0
    assert call.json["text"]["content"].startswith("小林你好呀")
    assert (await camp.member()).name == "小林"
