"""Helpers tests import (fixtures live in conftest.py)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Sized
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.api.admin.throttle import AuthThrottle
from app.capability import Extensions
from app.clock import ManualClock
from app.main import CAPABILITIES
from app.models import InboxEvent
from app.settings import Settings
from app.wecom_sandbox.callbacks import SignedCallback
from bots.dispatch import Context, Router
from scripts_library.trial import TrialPool

SHARED = Path(__file__).resolve().parents[2] / "shared"
# WeCom's official crypto test vectors, in ../shared when it is beside the project.
CRYPTO_VECTORS = SHARED / "fixtures" / "wecom" / "crypto_vectors.json"
needs_crypto_vectors = pytest.mark.skipif(
    not CRYPTO_VECTORS.exists(), reason="../shared is not beside the project"
)


def crypto_vectors(section: str, *, with_token: bool = False) -> list[Any]:
    """The vectors that have `section` (and a callback token, with `with_token`), as params."""
    if not CRYPTO_VECTORS.exists():
        return []
    return [
        pytest.param(v, id=v["id"])
        for v in json.loads(CRYPTO_VECTORS.read_text())
        if section in v and (v.get("token") or not with_token)
    ]


FIXTURES = Path(__file__).resolve().parent / "fixtures"
# Obviously fake credentials for the test corp.
CORP_ID = "wwcampbottest0001"
TOKEN = "campbotTestToken"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
AGENT_ID, APP_SECRET = 1000002, "not-a-real-secret"
# The trial-render workers every app of the test session shares (starting one takes about
# half a second); conftest closes them when the session ends.
TRIALS = TrialPool()


class AppHarness:
    """The app with its lifespan running, and an HTTP client into it."""

    def __init__(self, app: FastAPI, client: httpx.AsyncClient) -> None:
        self.app = app
        self.client = client

    async def deliver(self, callback: SignedCallback) -> httpx.Response:
        return await self.client.post(callback.path, content=callback.body)

    def allow_refusals(self, routes: Sized) -> None:
        """Let each of `routes` refuse a bad token from this one address before the admin
        throttle steps in: a test walking every route wants each route's own 401."""
        self.app.state.admin_throttle = AuthThrottle(max_failures=len(routes) + 1)


def _no_network(request: httpx.Request) -> httpx.Response:
    raise httpx.ConnectError("tests never reach WeCom: pass a sandbox transport", request=request)


@asynccontextmanager
async def running_app(
    *,
    settings: Settings,
    clock: ManualClock,
    engine: AsyncEngine,
    routers: Iterable[Router] | None = None,
    wecom_transport: httpx.AsyncBaseTransport | None = None,
    sender: bool = True,
) -> AsyncIterator[AppHarness]:
    """The app on the test clock and database. WeCom calls go to `wecom_transport` (e.g.
    `sandbox_transport(sandbox)`); without one they fail as if offline, never reaching out.
    `sender=False` leaves the sender loop off: tests push rows with `runtime.sender`. The
    instance registers but does not beat: on the test clock a heartbeat tells nothing."""
    from app.main import create_app

    app = create_app(
        settings=settings,
        clock=clock,
        engine=engine,
        routers=routers,
        wecom_transport=wecom_transport or httpx.MockTransport(_no_network),
        sweeper=False,
        scheduler=False,
        sender=sender,
        heartbeat=False,
        script_trials=TRIALS,
    )
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://campbot") as client:
            yield AppHarness(app, client)


def wired(settings: Settings) -> Extensions:
    """The capabilities' jobs, filters, providers, loops and hooks, as `app.main` wires them
    (for tests that drive the scheduler or a service without the app)."""
    return Extensions.of(CAPABILITIES, settings=settings)


class Recorder:
    """A router whose handler records every event it saw (and can be told to fail)."""

    def __init__(self, kind: str = "text", *, fail_with: Exception | None = None) -> None:
        self.seen: list[str] = []
        self.fail_with = fail_with
        self.router = Router("recorder")
        self.router.on(kind)(self.handle)

    async def handle(self, ctx: Context) -> None:
        self.seen.append(ctx.event.dedupe_key)
        if self.fail_with is not None:
            raise self.fail_with


async def inbox_rows(sessions: async_sessionmaker[AsyncSession]) -> list[InboxEvent]:
    async with sessions() as session:
        return list((await session.execute(select(InboxEvent).order_by(InboxEvent.id))).scalars())


async def count_rows(sessions: async_sessionmaker[AsyncSession], model: type) -> int:
    async with sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


def text_message(msg_id: str, content: str = "你好", at: datetime = T0) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        "<FromUserName><![CDATA[zhangsan]]></FromUserName>"
        f"<CreateTime>{int(at.timestamp())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId>"
        "<AgentID>1000002</AgentID></xml>"
    )


def contact_added(
    external_userid: str,
    *,
    staff: str = "zhangsan",
    state: str = "camp42",
    at: datetime = T0,
    change_type: str = "add_external_contact",
) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        "<FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{int(at.timestamp())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[change_external_contact]]></Event>"
        f"<ChangeType><![CDATA[{change_type}]]></ChangeType>"
        f"<UserID><![CDATA[{staff}]]></UserID>"
        f"<ExternalUserID><![CDATA[{external_userid}]]></ExternalUserID>"
        f"<State><![CDATA[{state}]]></State>"
        f"<WelcomeCode><![CDATA[WC-{external_userid}]]></WelcomeCode></xml>"
    )


def chat_members_changed(
    chat_id: str,
    members: list[str],
    *,
    detail: str = "add_member",
    at: datetime = T0,
    last: str = "",
    cur: str = "",
    item_shape: bool = True,
) -> str:
    listing = (
        "".join(f"<Item><![CDATA[{m}]]></Item>" for m in members)
        if item_shape
        else f"<![CDATA[{','.join(members)}]]>"
    )
    scene = "<JoinScene>3</JoinScene>" if detail == "add_member" else "<QuitScene>0</QuitScene>"
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        "<FromUserName><![CDATA[sys]]></FromUserName>"
        f"<CreateTime>{int(at.timestamp())}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
        "<Event><![CDATA[change_external_chat]]></Event>"
        f"<ChatId><![CDATA[{chat_id}]]></ChatId><ChangeType><![CDATA[update]]></ChangeType>"
        f"<UpdateDetail><![CDATA[{detail}]]></UpdateDetail>{scene}"
        f"<MemChangeCnt>{len(members)}</MemChangeCnt><MemChangeList>{listing}</MemChangeList>"
        f"<LastMemVer><![CDATA[{last}]]></LastMemVer><CurMemVer><![CDATA[{cur}]]></CurMemVer>"
        "</xml>"
    )
