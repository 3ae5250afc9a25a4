"""喜报 fixtures: the app with an admin token (no sender loop: tests drain the outbox with
their own Sender on the test clock), and a cohort of 30 groups over all three channels."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import app.admin.models  # noqa: F401 - registers the admin tables before the engine creates them
import bots.xibao.models  # noqa: F401 - the same for the 喜报 tables
from app.admin.models import Cohort, CohortGroup, CohortMember
from app.channels.deliver import ChannelDeliverer
from app.clock import ManualClock
from app.models import Group, Member
from app.sender import Sender
from app.settings import Settings
from app.wecom.client import WeComClient
from app.wecom_sandbox.state import SandboxState
from bots.xibao import poster
from scripts_library.loader import DEFAULT_PACK, import_pack
from tests.support import AppHarness, running_app

ADMIN_TOKEN = "test-admin-token"
OWNER = "zhangsan"
STUDENT_NAME = "张小明"
START = date(2026, 2, 27)  # T0 (2026-03-01 17:00 Shanghai) is day 2


@pytest.fixture
def settings() -> Settings:
    # No WECOM_* settings: the app runs no sender, so rows wait for the test's own Sender.
    return Settings(ADMIN_TOKEN=ADMIN_TOKEN, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def harness(
    settings: Settings, clock: ManualClock, engine: AsyncEngine
) -> AsyncIterator[AppHarness]:
    async with running_app(settings=settings, clock=clock, engine=engine) as running:
        yield running


class Admin:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.get("/admin/api" + path, headers=self.headers, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.client.post("/admin/api" + path, headers=self.headers, **kwargs)


@pytest.fixture
def admin(harness: AppHarness) -> Admin:
    return Admin(harness.client)


@pytest.fixture
def no_cjk_font() -> Iterator[None]:
    """A server with no font that draws Chinese: fontconfig not asked, no known path."""
    poster.use_font_search(poster.FontSearch(fc_pattern=None, paths=()))
    yield
    poster.use_font_search(None)


@pytest.fixture
def sender(
    wecom_client: WeComClient, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> Sender:
    return Sender(sessions=sessions, deliver=ChannelDeliverer(wecom_client), clock=clock)


@dataclass
class CampIds:
    cohort_id: int
    member_id: int
    groups: dict[str, list[int]]  # channel → group ids


def robot_key(n: int) -> str:
    return f"robot-{n}"


def appchat_id(n: int) -> str:
    return f"appchat-{n}"


def customer_chat(n: int) -> str:
    return f"wrCustomer{n}"


async def seed_camp(
    sessions: async_sessionmaker[AsyncSession],
    sandbox: SandboxState,
    clock: ManualClock,
    *,
    per_channel: int = 10,
    end_date_offset: int = 7,
) -> CampIds:
    """The default content pack (its `xibao` script), a cohort with `per_channel` robot,
    app-chat and customer groups, and one student."""
    now = clock.now()
    groups: dict[str, list[int]] = {"robot": [], "appchat": [], "customer": []}
    async with sessions.begin() as session:
        await import_pack(session=session, paths=[DEFAULT_PACK], author="test", now=now)
        cohort = Cohort(
            name="6 期",
            camp="跨境电商实战营",
            start_date=START,
            days=end_date_offset,
            channel_state="camp6",
            timezone="Asia/Shanghai",
            created_at=now,
            updated_at=now,
        )
        member = Member(
            external_userid="wmZhang",
            name=STUDENT_NAME,
            staff_userid=OWNER,
            created_at=now,
            updated_at=now,
        )
        session.add_all([cohort, member])
        await session.flush()
        session.add(CohortMember(member_id=member.id, cohort_id=cohort.id, joined_at=now))
        for n in range(per_channel):
            made = [
                Group(name=f"6期机器人{n}群", channel="robot", robot_key=robot_key(n)),
                Group(name=f"6期内部{n}群", channel="appchat", chat_id=appchat_id(n)),
                Group(
                    name=f"6期学员{n}群",
                    channel="customer",
                    chat_id=customer_chat(n),
                    owner_userid=OWNER,
                ),
            ]
            for group in made:
                group.status, group.needs_sync = "active", False
                group.created_at = group.updated_at = now
                session.add(group)
                await session.flush()
                session.add(CohortGroup(group_id=group.id, cohort_id=cohort.id, linked_at=now))
                groups[group.channel].append(group.id)
            sandbox.add_robot(robot_key(n))
            sandbox.add_appchat(appchat_id(n), [OWNER, "lisi"])
            sandbox.add_customer_group(customer_chat(n), owner=OWNER, members=["wmZhang"])
    return CampIds(cohort.id, member.id, groups)


async def drain(sender: Sender, clock: ManualClock, *, rounds: int = 1000) -> None:
    """Run the sender, moving the clock to each next due time as its loop would sleep."""
    for _ in range(rounds):
        if await sender.run_once():
            continue
        due = await sender.next_due()
        if due is None:
            return
        clock.set(max(due, clock.now()))
