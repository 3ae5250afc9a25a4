"""打卡 by app 1:1 message, end to end: WeCom's callback through /wecom/callback, the entry
and score in the database, and the confirmation sent to the member by app message."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import schedules.models  # noqa: F401 - cohort hooks re-plan schedules: their tables
from app.clock import ManualClock
from app.models import InboxEvent
from app.sender import Sender
from app.settings import Settings
from app.wecom_sandbox.sender import CallbackSender
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from bots.checkin.models import CheckinEntry, MemberScore
from tests.bots.checkin.camp import make_cohort, make_member
from tests.support import AES_KEY, AGENT_ID, APP_SECRET, CORP_ID, TOKEN, AppHarness, running_app

Sessions = async_sessionmaker[AsyncSession]
STUDENT, STRANGER = "lisi", "wangwu"
# The test clock starts 2026-03-01 09:00 UTC = 17:00 in Shanghai: day 1 of this cohort.
START = date(2026, 2, 28)
SEND = "message/send"


@dataclass
class Camp:
    harness: AppHarness
    sandbox: SandboxState
    wecom: CallbackSender
    sessions: Sessions
    clock: ManualClock
    member_id: int

    @property
    def sender(self) -> Sender:
        sender: Sender | None = self.harness.app.state.runtime.sender
        assert sender is not None
        return sender

    async def replies(self) -> list[tuple[str, str]]:
        """Every reply sent so far (app messages to one member go 2.04 s apart)."""
        for _ in range(5):
            await self.sender.run_once()
            self.clock.advance(timedelta(seconds=3))
        return [
            (call.json["touser"], call.json["text"]["content"])
            for call in self.sandbox.calls_to(SEND)
        ]

    async def entries(self) -> list[CheckinEntry]:
        async with self.sessions() as session:
            rows = await session.execute(select(CheckinEntry).order_by(CheckinEntry.id))
            return list(rows.scalars())

    async def image(self, userid: str, *, pic_url: str, media_id: str) -> None:
        at = int(self.clock.now().timestamp())
        plaintext = (
            f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
            f"<FromUserName><![CDATA[{userid}]]></FromUserName>"
            f"<CreateTime>{at}</CreateTime><MsgType><![CDATA[image]]></MsgType>"
            f"<PicUrl><![CDATA[{pic_url}]]></PicUrl><MediaId><![CDATA[{media_id}]]></MediaId>"
            f"<MsgId>{secrets.randbelow(10**18)}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>"
        )
        sent = await self.wecom.send(plaintext)
        assert sent.response.status_code == 200


@pytest.fixture
async def camp(
    settings: Settings, clock: ManualClock, engine: AsyncEngine, sessions: Sessions
) -> AsyncIterator[Camp]:
    sandbox = SandboxState(corp_id=CORP_ID, apps={AGENT_ID: APP_SECRET}, clock=clock)
    sandbox.add_user(STUDENT, "李四")
    sandbox.add_user(STRANGER, "王五")
    async with sessions.begin() as session:
        cohort = await make_cohort(session, start=START, milestones={"2": 15})
        member = await make_member(session, cohort, "李四", userid=STUDENT)
        member_id = member.id
    async with running_app(
        settings=settings,
        clock=clock,
        engine=engine,
        wecom_transport=sandbox_transport(sandbox),
        sender=False,
    ) as harness:
        wecom = CallbackSender(
            sandbox, harness.client, token=TOKEN, encoding_aes_key=AES_KEY, agent_id=AGENT_ID
        )
        yield Camp(harness, sandbox, wecom, sessions, clock, member_id)


async def test_a_checkin_message_is_recorded_and_confirmed(camp: Camp) -> None:
    sent = await camp.wecom.text_from_member(STUDENT, "打卡 今天读完第三章")
    assert sent.response.status_code == 200

    [entry] = await camp.entries()
    assert (entry.member_id, entry.day, entry.text, entry.source, entry.points) == (
        camp.member_id,
        1,
        "今天读完第三章",
        "app",
        10,
    )
    [(to, text)] = await camp.replies()
    assert to == STUDENT
    assert text == "✅ 打卡成功（第 1 天）\n连续打卡 1 天，积分 10，排名第 1/1"
    # WeCom's retry of the same callback changes nothing and answers nothing more.
    await camp.wecom.redeliver(sent)
    assert len(await camp.entries()) == 1
    assert len(await camp.replies()) == 1


async def test_an_image_wecom_no_longer_has_still_checks_in(camp: Camp) -> None:
    """Media ids WeCom does not know (40007): the check-in counts, the image is not kept
    (downloads that work: tests/bots/checkin/test_app_images.py)."""
    await camp.image(STUDENT, pic_url="https://wework.qpic.cn/abc/0", media_id="MEDIA1")
    await camp.wecom.text_from_member(STUDENT, "打卡：配图是今天的笔记")
    await camp.image(STUDENT, pic_url="", media_id="MEDIA2")

    [entry] = await camp.entries()
    assert entry.text == "配图是今天的笔记"
    assert entry.images == []
    replies = [text for _, text in await camp.replies()]
    assert len(replies) == 3
    assert replies[0].startswith("✅ 打卡成功（第 1 天）")
    assert all(text.startswith("✏️ 已更新今天的打卡") for text in replies[1:])
    assert [
        text.endswith("⚠️ 图片没能保存（图片已过期），请重新发送图片。") for text in replies
    ] == [
        True,
        False,
        True,
    ]
    async with camp.sessions() as session:
        score = await session.get(MemberScore, (camp.member_id, 1))
        assert score is not None
        assert score.points == 10


async def test_strangers_get_a_hint_and_other_texts_are_left_to_qa(camp: Camp) -> None:
    await camp.wecom.text_from_member(STRANGER, "打卡 我也想打卡")
    await camp.image(STRANGER, pic_url="https://wework.qpic.cn/x/0", media_id="M")
    await camp.wecom.text_from_member(STUDENT, "今天要打卡吗")  # 打卡 not first
    await camp.wecom.text_from_member(STUDENT, "打卡率多少")  # not the command

    assert await camp.entries() == []
    assert await camp.replies() == [
        (STRANGER, "你还不在任何一期训练营里，暂时不能打卡。如有疑问请联系助教老师。")
    ]
    async with camp.sessions() as session:
        statuses = (await session.execute(select(InboxEvent.status))).scalars().all()
    assert set(statuses) == {"handled"}


async def test_a_streak_milestone_is_announced(camp: Camp) -> None:
    await camp.wecom.text_from_member(STUDENT, "打卡")  # a bare 打卡 counts
    await camp.replies()
    camp.clock.advance(timedelta(days=1))
    await camp.wecom.text_from_member(STUDENT, "打卡 第二天")
    replies = [text for _, text in await camp.replies()]
    # Day 1: 10; day 2: 10 + the "2" milestone 15 = 35.
    assert replies[-1].splitlines() == [
        "✅ 打卡成功（第 2 天）",
        "连续打卡 2 天，积分 35，排名第 1/1",
        "🎉 连续打卡达成，奖励 15 积分！",
    ]
    assert [e.text for e in await camp.entries()] == ["打卡", "第二天"]
