"""Q&A fixtures: CampBot with the admin API and the WeCom sandbox, members who ask."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import schedules.models  # noqa: F401 - a member joining a cohort re-plans schedules
from app.api import callback
from app.clock import ManualClock
from app.models import OutboxMessage
from app.sender import Sender
from app.settings import Settings
from app.wecom.passive import PassiveReply
from app.wecom_sandbox.records import Delivery
from app.wecom_sandbox.sender import CallbackSender, SentCallback
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from tests.admin.conftest import ADMIN_TOKEN, Admin
from tests.support import AES_KEY, AGENT_ID, APP_SECRET, CORP_ID, TOKEN, AppHarness, running_app

Sessions = async_sessionmaker[AsyncSession]
ASKER, OTHER = "lisi", "wangwu"
PACE = timedelta(seconds=3)


@dataclass
class Desk:
    """CampBot running against the sandbox, an operator, and members who ask."""

    harness: AppHarness
    sandbox: SandboxState
    wecom: CallbackSender
    admin: Admin
    sessions: Sessions
    clock: ManualClock

    async def ask(self, content: str, userid: str = ASKER) -> SentCallback:
        # A person's pace: past the outbox's spacing of app messages to one member (30/min).
        self.clock.advance(PACE)
        sent = await self.wecom.text_from_member(userid, content)
        assert sent.response.status_code == 200, sent.response.text
        return sent

    async def flush(self) -> None:
        """Let the sender send what waited for its rate slot (a second reply to one member)."""
        self.clock.advance(PACE)
        sender: Sender | None = self.harness.app.state.runtime.sender
        assert sender is not None
        await sender.run_once()

    def replies(self, userid: str = ASKER) -> list[str]:
        """Texts `userid` received, in order: passive replies (in the callback's answer)
        and app messages (a passive reply comes before app messages of the same moment)."""
        return [text for *_, text in sorted(self._passive(userid) + self._messages(userid))]

    def app_messages(self, userid: str = ASKER) -> list[str]:
        """Texts WeCom delivered to `userid` as app messages, in order."""
        return [text for *_, text in self._messages(userid)]

    def _passive(self, userid: str) -> list[tuple[float, int, int, str]]:
        return [
            (float(reply.create_time), 0, index, reply.content)
            for index, reply in enumerate(self.wecom.passive_replies)
            if reply.to_user == userid
        ]

    def _messages(self, userid: str) -> list[tuple[float, int, int, str]]:
        deliveries = self.sandbox.delivered("message")
        return [
            (d.at.timestamp(), 1, index, _text(d))
            for index, d in enumerate(deliveries)
            if d.target == userid
        ]

    async def rule(self, **fields: Any) -> dict[str, Any]:
        return await self.admin.created("/qa-rules", {"mode": "contains"} | fields)

    async def member(self, userid: str, cohort_id: int | None) -> dict[str, Any]:
        body = {"userid": userid, "name": f"成员{userid}", "cohort_id": cohort_id}
        return await self.admin.created("/members", body)

    async def outbox(self) -> list[OutboxMessage]:
        async with self.sessions() as session:
            rows = await session.execute(select(OutboxMessage).order_by(OutboxMessage.id))
            return list(rows.scalars())


def _text(delivery: Delivery) -> str:
    body = delivery.body
    assert isinstance(body, dict)
    msgtype = body["msgtype"]
    return str(body[msgtype]["content"])


@pytest.fixture
def settings() -> Settings:
    return Settings(
        WECOM_CORP_ID=CORP_ID,
        WECOM_TOKEN=TOKEN,
        WECOM_ENCODING_AES_KEY=AES_KEY,
        WECOM_AGENT_ID=AGENT_ID,
        WECOM_SECRET=APP_SECRET,
        ADMIN_TOKEN=ADMIN_TOKEN,
        PUBLIC_BASE_URL="https://camp.example.com",
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
async def desk(
    settings: Settings, clock: ManualClock, engine: AsyncEngine, sessions: Sessions
) -> AsyncIterator[Desk]:
    sandbox = SandboxState(corp_id=CORP_ID, apps={AGENT_ID: APP_SECRET}, clock=clock)
    for userid in (ASKER, OTHER):
        sandbox.add_user(userid, f"成员{userid}")
    async with running_app(
        settings=settings,
        clock=clock,
        engine=engine,
        wecom_transport=sandbox_transport(sandbox),
        sender=False,  # replies go out through the handler's after-commit push only
    ) as harness:
        wecom = CallbackSender(
            sandbox, harness.client, token=TOKEN, encoding_aes_key=AES_KEY, agent_id=AGENT_ID
        )
        yield Desk(harness, sandbox, wecom, Admin(harness), sessions, clock)


class Watched(PassiveReply):
    """The real hand-off, also noting whether the handler's claim was accepted and when the
    callback stopped waiting."""

    def __init__(self, on_claim: asyncio.Event) -> None:
        super().__init__()
        self.claimed = False
        self.gone = asyncio.Event()
        self._on_claim = on_claim

    def claim(self, text: str) -> bool:
        self.claimed = super().claim(text)
        if self.claimed:
            self._on_claim.set()
        return self.claimed

    async def wait(self, budget_s: float, *, deadline: float) -> str | None:
        try:
            return await super().wait(budget_s, deadline=deadline)
        finally:
            self.gone.set()


@dataclass
class Watch:
    made: list[Watched] = field(default_factory=list)  # every hand-off, in order
    claimed: asyncio.Event = field(default_factory=asyncio.Event)  # one was claimed


@pytest.fixture
def passives(monkeypatch: pytest.MonkeyPatch) -> Watch:
    """The callback's hand-offs, watched."""
    watch = Watch()

    def make() -> Watched:
        watch.made.append(Watched(watch.claimed))
        return watch.made[-1]

    monkeypatch.setattr(callback, "PassiveReply", make)
    return watch
