"""What the console's tests share: accounts, cohorts, groups and scripts made through their
services, the one row's id, and a client that signs in through the sign-in form and sends
the session's CSRF token with its posts."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from app.admin.common import Actor
from app.clock import Clock
from app.console import accounts
from app.console.models import Role

PASSWORD = "correct-horse-battery"
_LOGIN_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_SESSION_CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')


async def make_account(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    username: str,
    role: Role,
    *,
    cohort_ids: Collection[int] = (),
    wecom_userid: str | None = None,
    password: str = PASSWORD,
    display_name: str | None = None,
) -> int:
    async with sessions.begin() as session:
        view = await accounts.create_account(
            session=session,
            actor=Actor("test"),
            now=clock.now(),
            username=username,
            display_name=display_name or username,
            role=role,
            password=password,
            wecom_userid=wecom_userid,
            cohort_ids=cohort_ids,
        )
        return view.account.id


class Console:
    """One browser: its own cookies, signed in as one account."""

    def __init__(self, app: Any) -> None:
        self.http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://campbot"
        )
        self.csrf = ""

    async def __aenter__(self) -> Console:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.aclose()

    async def try_sign_in(self, username: str, password: str = PASSWORD) -> httpx.Response:
        form = await self.http.get("/console/login")
        token = _LOGIN_CSRF.search(form.text)
        assert token is not None, form.text
        return await self.http.post(
            "/console/login",
            data={"username": username, "password": password, "csrf_token": token.group(1)},
        )

    async def sign_in(self, username: str, password: str = PASSWORD) -> None:
        answer = await self.try_sign_in(username, password)
        assert answer.status_code == 303, answer.text
        home = await self.http.get("/console/")
        assert home.status_code == 200, home.text
        found = _SESSION_CSRF.search(home.text)
        assert found is not None
        self.csrf = found.group(1)

    async def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return await self.http.get(path, **kwargs)

    async def post(
        self, path: str, data: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A form post with the session's CSRF token (as the page's form would send it)."""
        return await self.http.post(path, data={"csrf_token": self.csrf, **(data or {})}, **kwargs)

    async def hx_post(
        self, path: str, data: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """An htmx post: the token in the header hx-headers sets on <body>."""
        headers = {"HX-Request": "true", "X-CSRF-Token": self.csrf}
        return await self.http.post(path, data=dict(data or {}), headers=headers, **kwargs)


async def make_cohort(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    name: str = "6 期",
    state: str = "camp6",
    start: str = "2026-03-01",
    days: int = 7,
) -> int:
    from datetime import date

    from app.admin.cohorts import service as cohorts

    async with sessions.begin() as session:
        view = await cohorts.create_cohort(
            session=session,
            actor=Actor("test"),
            now=clock.now(),
            name=name,
            camp="跨境电商实战营",
            start_date=date.fromisoformat(start),
            days=days,
            channel_state=state,
            timezone="Asia/Shanghai",
            hooks=(),
        )
        return view.cohort.id


async def make_member(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    cohort_id: int,
    name: str,
    *,
    external_userid: str | None = None,
    userid: str | None = None,
    staff_userid: str | None = "zhangsan",
) -> int:
    from app.admin.members import service as members

    async with sessions.begin() as session:
        view = await members.create_member(
            session=session,
            actor=Actor("test"),
            now=clock.now(),
            external_userid=external_userid or (None if userid else f"wm{abs(hash(name))}"),
            userid=userid,
            name=name,
            cohort_id=cohort_id,
            hooks=(),
            staff_userid=staff_userid,
        )
        return view.member.id


async def make_robot_group(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    cohort_id: int,
    *,
    name: str = "6期1群",
    robot_key: str = "robot-6-1",
    actor: str = "test",
) -> int:
    """A 群机器人 group of the cohort; its id."""
    from app.admin.groups import service as groups
    from app.models import GroupChannel

    async with sessions.begin() as session:
        view = await groups.create_group(
            session=session,
            actor=Actor(actor),
            now=clock.now(),
            cohort_id=cohort_id,
            name=name,
            channel=GroupChannel.ROBOT,
            robot_key=robot_key,
            chat_id=None,
            owner_userid=None,
        )
        return view.group.id


async def make_script(
    sessions: async_sessionmaker[AsyncSession],
    clock: Clock,
    *,
    key: str,
    title: str,
    body: str,
    category: str = "daily",
) -> None:
    """A text script in the library."""
    from scripts_library import service as scripts

    async with sessions.begin() as session:
        await scripts.create_script(
            session=session,
            key=key,
            title=title,
            msgtype="text",
            body=body,
            category=category,
            author="test",
            now=clock.now(),
        )


async def only_id(
    sessions: async_sessionmaker[AsyncSession], column: InstrumentedAttribute[int]
) -> int:
    """The id in `column` of the table's one row (the test made exactly one)."""
    async with sessions() as session:
        found = list(await session.scalars(select(column)))
        assert len(found) == 1, found
        return found[0]


async def member_token(
    sessions: async_sessionmaker[AsyncSession], clock: Clock, member_id: int
) -> str:
    from app.admin import h5_tokens

    async with sessions.begin() as session:
        tokens = await h5_tokens.tokens_for(
            session=session, member_ids=[member_id], now=clock.now()
        )
        return tokens[member_id]
