"""The demo's stage: a compressed camp's settings, cast and clock, the app it runs in, and
the moves every step makes (`Demo`): admin calls, the scheduler and the sender run at each
moment instead of by their loops. The story is `app.cli.demo`."""

from __future__ import annotations

import asyncio
import io
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import httpx
from fastapi import FastAPI
from PIL import Image

from app.admin.common import Actor
from app.cli.demo_sidebar import Desk, sign_in
from app.clock import ManualClock
from app.console import accounts
from app.console.models import Role
from app.db import create_engine
from app.first_run import (
    SANDBOX_AES_KEY,
    SANDBOX_AGENT_ID,
    SANDBOX_TOKEN,
    new_sandbox_state,
    sandbox_settings,
)
from app.migrations import upgrade
from app.runtime import Runtime
from app.settings import Settings
from app.wecom.client import WeComClient
from app.wecom_sandbox.sender import CallbackSender
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from bots.group_welcome.loop import group_welcome_round
from bots.sop.service import sop_round
from schedules.runner import fire_due

ADMIN_TOKEN = "demo-admin-token"
CONSOLE_USER = "yunying"  # the demo's 运营 in the console
TZ = ZoneInfo("Asia/Shanghai")
CAMP_DAYS = 7
STAFF, ASSISTANT = "zhangsan", "lisi"
ROBOT_KEY = "demo-robot-0001"
CUSTOMER_CHAT = "wrDemoCustomerGroup01"
CHANNEL_STATE = "demo-camp"
# Who checks in on which camp day (1..7): a camp has its keen ones and its drop-offs.
STUDENTS: dict[str, tuple[str, frozenset[int]]] = {
    "wmDemoXiaolin": ("小林", frozenset(range(1, 8))),
    "wmDemoAmy": ("Amy", frozenset({1, 2, 3, 4, 6, 7})),
    "wmDemoAjie": ("阿杰", frozenset({1, 2, 3, 5})),
    "wmDemoMuzi": ("木子", frozenset({1, 2})),
    "wmDemoChengzi": ("大橙子", frozenset({1, 3, 4, 5, 6, 7})),
}
INTERNAL_STUDENT = ("wangwu", "王五")  # a corp member in the camp: checks in from the app
QUESTION = "请问直播回放在哪里看？"


@dataclass
class DemoReport:
    """What the demo did, for the closing summary and for the test that runs it."""

    welcomed: int = 0
    checkins: int = 0
    questions_answered: int = 0
    xibao_broadcast: int | None = None
    deliveries: Counter[str] = field(default_factory=Counter)
    stats_days: list[dict[str, Any]] = field(default_factory=list)
    h5_urls: dict[str, str] = field(default_factory=dict)
    reminded: dict[int, set[str]] = field(default_factory=dict)  # camp day → names
    posted: Counter[str] = field(default_factory=Counter)  # staff → 群SOP items posted
    skipped: int = 0
    shown_posts: int = 0  # 群SOP taps the story tells in detail
    mass_tasks: dict[str, int] = field(default_factory=dict)  # channel → 群发 tasks created
    sop_items: int = 0
    xibao_channel: str | None = None  # how the 喜报 reached the customer group
    sop_figures: list[dict[str, Any]] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)
    console_login: tuple[str, str] = ("", "")  # the operator's console account and password


@dataclass
class Demo:
    app: FastAPI
    client: httpx.AsyncClient
    wecom: CallbackSender
    state: SandboxState
    clock: ManualClock
    start: date
    out: Callable[[str], None]
    report: DemoReport = field(default_factory=DemoReport)
    cohort_id: int = 0
    desks: dict[str, Desk] = field(default_factory=dict)  # staff signed in to the sidebar

    async def desk(self, userid: str) -> Desk:
        """The staff member's sidebar; opened again when its 12-hour session is near its end."""
        desk = self.desks.get(userid)
        if desk is not None and self.clock.now() - desk.signed_at > timedelta(hours=11):
            await desk.client.aclose()
            desk = None
        if desk is None:
            desk = self.desks[userid] = await sign_in(self.app, self.state, userid)
        return desk

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    def say(self, text: str) -> None:
        self.report.lines.append(text)
        self.out(text)

    def at(self, day: int, hh_mm: str) -> None:
        """Move the camp's clock to camp day `day` at `hh_mm` (Shanghai)."""
        local = datetime.combine(self.start + timedelta(days=day), time.fromisoformat(hh_mm), TZ)
        self.clock.set(local)

    async def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        response = await self.client.request(
            method, f"/admin/api{path}", headers=headers, **kwargs
        )
        if response.status_code >= 400:
            raise DemoError(f"{method} {path} → {response.status_code}: {response.text}")
        return response.json() if response.content else None

    async def console_account(self) -> None:
        """An operator's console login, printed at the end (a new password each demo)."""
        password = secrets.token_urlsafe(9)
        async with self.runtime.sessions.begin() as session:
            await accounts.create_account(
                session=session,
                actor=Actor("演示"),
                now=self.clock.now(),
                username=CONSOLE_USER,
                display_name="演示运营",
                role=Role.OPERATOR,
                password=password,
            )
        self.report.console_login = (CONSOLE_USER, password)

    async def settle(self) -> None:
        """Let handlers finish and the sender drain what is due, moving the clock only as
        far as the rate limits' spacing needs (a robot's 3 s between messages)."""
        await self.runtime.processor.drain()
        sender = self.runtime.sender
        assert sender is not None  # the sandbox settings always give a sender
        limit = self.clock.now() + timedelta(minutes=10)
        while True:
            if await sender.run_once():
                continue
            due = await sender.next_due()
            if due is None or due > limit:
                break
            self.clock.set(max(due, self.clock.now()))

    @property
    def wecom_client(self) -> WeComClient:
        client = self.runtime.wecom
        assert client is not None  # the sandbox settings always give a client
        return client

    async def group_joins(self) -> None:
        """What the group-join loop does every 2 s: heal member lists, greet batched joins."""
        await group_welcome_round(
            sessions=self.runtime.sessions, wecom=self.wecom_client, clock=self.clock
        )

    async def fire(self) -> None:
        await fire_due(
            sessions=self.runtime.sessions,
            clock=self.clock,
            default_tz="Asia/Shanghai",
            extensions=self.runtime.extensions,
        )
        await sop_round(sessions=self.runtime.sessions, clock=self.clock)  # the 群SOP loop's
        await self.settle()


class DemoError(Exception):
    """A step of the demo did not do what it should (the message says which)."""


def png(text_seed: int) -> bytes:
    image = Image.new("RGB", (96, 96), (40 + text_seed * 30 % 200, 120, 200))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def token_of(h5_url: str) -> str:
    return urlparse(h5_url).path.rsplit("/", 1)[-1]


@asynccontextmanager
async def running(database_url: str, out: Callable[[str], None]) -> AsyncIterator[Demo]:
    from app.main import create_app  # the edge: the demo runs the whole app

    await asyncio.to_thread(upgrade, database_url)
    today = datetime.now(TZ).date()
    start = today - timedelta(days=CAMP_DAYS)
    clock = ManualClock(datetime.combine(start - timedelta(days=1), time(20), TZ))
    state = new_sandbox_state()
    state.clock = clock
    state.add_user(INTERNAL_STUDENT[0], INTERNAL_STUDENT[1])
    state.add_robot(ROBOT_KEY)
    state.add_customer_group(CUSTOMER_CHAT, STAFF, name="跨境电商实战营·1 期 学员群")
    settings = sandbox_settings(
        Settings(ADMIN_TOKEN=ADMIN_TOKEN, DATABASE_URL=database_url, _env_file=None)  # type: ignore[call-arg]
    )
    engine = create_engine(database_url)
    app = create_app(
        settings=settings,
        clock=clock,
        engine=engine,
        wecom_transport=sandbox_transport(state),
        sweeper=False,
        scheduler=False,
        sender=False,
    )
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://campbot") as client:
                wecom = CallbackSender(
                    state,
                    client,
                    token=SANDBOX_TOKEN,
                    encoding_aes_key=SANDBOX_AES_KEY,
                    agent_id=SANDBOX_AGENT_ID,
                )
                demo = Demo(app, client, wecom, state, clock, start, out)
                try:
                    yield demo
                finally:
                    for desk in demo.desks.values():
                        await desk.client.aclose()
    finally:
        await engine.dispose()


# --------------------------------------------------------------------------- the camp's set-up
