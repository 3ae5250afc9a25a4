"""The sandbox corp, served in-process to an httpx client."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.clock import ManualClock
from app.wecom_sandbox.server import create_sandbox_app
from app.wecom_sandbox.state import SandboxState
from tests.wecom_sandbox.support import (
    AGENT,
    BASE_URL,
    CORP_ID,
    OTHER_AGENT,
    OTHER_SECRET,
    SECRET,
    SandboxApi,
)


@pytest.fixture
def state(clock: ManualClock) -> SandboxState:
    corp = SandboxState(
        corp_id=CORP_ID, apps={AGENT: SECRET, OTHER_AGENT: OTHER_SECRET}, clock=clock
    )
    for userid in ("zhangsan", "lisi", "wangwu"):
        corp.add_user(userid)
    return corp


@pytest.fixture
async def client(state: SandboxState) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_sandbox_app(state))
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture
def api(client: httpx.AsyncClient, state: SandboxState) -> SandboxApi:
    return SandboxApi(client, state)
