"""First run: with no WeCom settings at all, CampBot talks to the built-in WeCom sandbox.

A newcomer's `./run serve` then works end to end on one machine: WeCom calls go to an
in-process `SandboxState` (the same stateful fake the tests use), the sandbox's own
routes (what WeCom would have received, and buttons to play WeCom's side: add a
contact, join a group) are mounted at SANDBOX_MOUNT, and callbacks are signed with the
sandbox's fixed Token and EncodingAESKey. With no console account yet, a demo 管理员 is made
and its login printed at start (`demo_login`). Any WeCom variable set turns this off, so a
half-configured production instance never silently talks to a fake.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

import httpx
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.applications import Starlette

from app.admin.common import Actor
from app.console import accounts
from app.console.models import Role
from app.settings import Settings
from app.wecom_sandbox.server import create_sandbox_app
from app.wecom_sandbox.state import SandboxState

SANDBOX_CORP_ID = "wwsandbox0000001"
SANDBOX_AGENT_ID = 1000002
SANDBOX_SECRET = "sandbox-secret"
SANDBOX_TOKEN = "sandboxtoken"
SANDBOX_AES_KEY = "c2FuZGJveC1lbmNvZGluZy1hZXMta2V5LWZvci1jYW0"  # 43 characters
SANDBOX_MOUNT = "/wecom-sandbox"
STAFF = {"zhangsan": "张老师", "lisi": "李助教"}
DEMO_USERNAME = "demo"


@dataclass(frozen=True, slots=True)
class FirstRun:
    """The sandbox CampBot runs against, and the settings pointing at it."""

    state: SandboxState
    settings: Settings
    app: Starlette

    def transport(self) -> httpx.AsyncBaseTransport:
        return httpx.ASGITransport(app=self.app)


def wecom_unconfigured(settings: Settings) -> bool:
    return not settings.wecom_configured


def sandbox_settings(settings: Settings) -> Settings:
    """`settings` with the sandbox's corp, app and callback secrets filled in."""
    return settings.model_copy(
        update={
            "wecom_corp_id": SANDBOX_CORP_ID,
            "wecom_agent_id": SANDBOX_AGENT_ID,
            "wecom_secret": SecretStr(SANDBOX_SECRET),
            "wecom_token": SecretStr(SANDBOX_TOKEN),
            "wecom_encoding_aes_key": SecretStr(SANDBOX_AES_KEY),
        }
    )


def new_sandbox_state(settings: Settings | None = None) -> SandboxState:
    """The sandbox corp; its 群发 receive rule is the one CampBot is told WeCom applies."""
    state = SandboxState(corp_id=SANDBOX_CORP_ID, apps={SANDBOX_AGENT_ID: SANDBOX_SECRET})
    if settings is not None:
        state.msg_template_quota_mode = settings.wecom_mass_send_quota.value
    for userid, name in STAFF.items():
        state.add_user(userid, name)
    return state


def first_run(settings: Settings) -> FirstRun:
    state = new_sandbox_state(settings)
    return FirstRun(
        state=state, settings=sandbox_settings(settings), app=create_sandbox_app(state)
    )


async def demo_login(*, session: AsyncSession, now: datetime) -> str | None:
    """With no console account yet, a 管理员 `demo` with a new random password, which is
    answered (the start-up log prints it once); None when accounts exist."""
    if await accounts.count_accounts(session=session):
        return None
    password = secrets.token_urlsafe(9)
    await accounts.create_account(
        session=session,
        actor=Actor("首次运行"),
        now=now,
        username=DEMO_USERNAME,
        display_name="演示管理员",
        role=Role.ADMIN,
        password=password,
    )
    return password
