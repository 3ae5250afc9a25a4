"""The console's shell: every page needs a session, every change a CSRF token; sign-in is
throttled and locks an account; sign-out and a password change end sessions; roles and
cohorts decide what an account may open."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.routing import iter_route_contexts
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from app.console.models import ConsoleAccount, Role
from app.console.route import ConsoleRoute
from app.console.signin import ACCOUNT_MAX_FAILURES, ADDRESS_MAX_FAILURES
from tests.console.support import PASSWORD, Console, make_account
from tests.support import AppHarness

_PARAM = re.compile(r"\{[^}]+\}")


def console_routes(app: object) -> list[tuple[str, str]]:
    """Every (method, path) a ConsoleRoute answers, path parameters filled in."""
    found = []
    for context in iter_route_contexts(app.routes):  # type: ignore[attr-defined]
        if isinstance(context.route, ConsoleRoute):
            for method in sorted(context.methods or ()):
                found.append((method, _PARAM.sub("1", context.path)))
    return found


async def test_every_console_route_sends_a_stranger_to_sign_in(
    console_app: AppHarness,
) -> None:
    routes = console_routes(console_app.app)
    # The shell's own and the capabilities' pages are all there (a page added later is too).
    assert ("GET", "/console/") in routes
    assert ("POST", "/console/logout") in routes
    assert len(routes) > 5
    client = console_app.client
    for method, path in routes:
        answer = await client.request(method, path, data={"csrf_token": "x"})
        assert answer.status_code == 303, (method, path, answer.status_code)
        assert answer.headers["location"].startswith("/console/login?next="), (method, path)
        hx = await client.request(method, path, headers={"HX-Request": "true"})
        assert hx.status_code == 401
        assert hx.headers["HX-Redirect"].startswith("/console/login")


async def test_the_root_leads_to_the_console_and_the_docs_stay(console_app: AppHarness) -> None:
    root = await console_app.client.get("/")
    assert root.status_code == 303
    assert root.headers["location"] == "/console/"
    home = await console_app.client.get("/console/")
    assert home.headers["location"] == "/console/login?next=/console/"
    assert (await console_app.client.get("/docs")).status_code == 200
    assert (await console_app.client.get("/admin/api/cohorts")).status_code == 401


async def test_sign_in_shows_the_console_in_chinese(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR, display_name="小鹿老师")
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        home = await browser.get("/console/")
    assert "小鹿老师（运营）" in home.text
    assert home.headers["Cache-Control"] == "no-store"
    assert "script-src 'self'" in home.headers["Content-Security-Policy"]
    assert re.match(r"app;dur=[\d.]+, cpu;dur=[\d.]+", home.headers["Server-Timing"])


async def test_a_session_cookie_is_http_only_and_lax(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        answer = await browser.try_sign_in("xiaolu")
    cookie = next(
        v for k, v in answer.headers.multi_items() if k == "set-cookie" and "campbot_console=" in v
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie
    assert "Secure" not in cookie  # PUBLIC_BASE_URL is http here


async def test_a_wrong_password_is_refused_and_the_account_locks_with_a_time(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        for _ in range(ACCOUNT_MAX_FAILURES):
            wrong = await browser.try_sign_in("xiaolu", "not-the-password")
            assert wrong.status_code == 401
            assert "用户名或密码不正确" in wrong.text
        locked = await browser.try_sign_in("xiaolu", PASSWORD)  # even the right one, now
        assert locked.status_code == 429
        assert re.search(r"账号已锁定，请在 \d\d:\d\d 之后（约 15 分钟）再试", locked.text)
        clock.advance(timedelta(minutes=16))
        await browser.sign_in("xiaolu")
    async with sessions() as session:
        account = await session.scalar(select(ConsoleAccount))
        assert account is not None
        assert account.failed_logins == 0


async def test_an_address_guessing_many_accounts_is_throttled(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        for n in range(ADDRESS_MAX_FAILURES):
            assert (await browser.try_sign_in(f"guess{n}", "nope-nope-nope")).status_code == 401
        refused = await browser.try_sign_in("xiaolu", PASSWORD)
    assert refused.status_code == 429
    assert "这个地址登录失败次数过多" in refused.text
    assert "之后" in refused.text


async def test_sign_in_without_the_login_forms_token_is_refused(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    form = {"username": "xiaolu", "password": PASSWORD, "csrf_token": "forged"}
    answer = await console_app.client.post("/console/login", data=form)
    assert answer.status_code == 403
    assert "campbot_console=" not in answer.headers.get("set-cookie", "")


@pytest.mark.parametrize("token", [None, "wrong-token"])
async def test_a_change_without_the_sessions_csrf_token_is_refused(
    console_app: AppHarness,
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    token: str | None,
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        data = {} if token is None else {"csrf_token": token}
        refused = await browser.http.post("/console/logout", data=data)
        assert refused.status_code == 403
        assert "CSRF" in refused.text
        hx = await browser.http.post(
            "/console/logout", headers={"HX-Request": "true", "X-CSRF-Token": token or ""}
        )
        assert hx.status_code == 403
        assert (await browser.get("/console/")).status_code == 200  # still signed in
        assert (await browser.hx_post("/console/logout")).status_code == 303


async def test_sign_out_ends_the_session_for_whoever_kept_the_cookie(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        kept = dict(browser.http.cookies)
        assert (await browser.post("/console/logout")).status_code == 303
    async with Console(console_app.app) as thief:
        thief.http.cookies.update(kept)
        assert (await thief.get("/console/")).status_code == 303


async def test_a_forged_cookie_is_refused(console_app: AppHarness) -> None:
    async with Console(console_app.app) as forger:
        forger.http.cookies.set("campbot_console", "abc.def")
        assert (await forger.get("/console/")).status_code == 303


async def test_a_password_change_ends_every_other_session(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as phone, Console(console_app.app) as laptop:
        await phone.sign_in("xiaolu")
        await laptop.sign_in("xiaolu")
        short = await laptop.post(
            "/console/password", {"current": PASSWORD, "new": "short", "again": "short"}
        )
        assert short.status_code == 422
        assert "密码至少 10 个字符" in short.text
        changed = await laptop.post(
            "/console/password",
            {"current": PASSWORD, "new": "a-new-long-pass", "again": "a-new-long-pass"},
        )
        assert changed.status_code == 303
        assert (await laptop.get("/console/password?done=1")).status_code == 200  # kept
        assert (await phone.get("/console/")).status_code == 303  # signed out
        assert (await phone.try_sign_in("xiaolu")).status_code == 401
        await phone.sign_in("xiaolu", "a-new-long-pass")


async def test_an_assistant_cannot_open_an_admin_page(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "zhujiao", Role.ASSISTANT)
    async with Console(console_app.app) as browser:
        await browser.sign_in("zhujiao")
        for path in ("/console/accounts", "/console/accounts/1", "/console/audit"):
            answer = await browser.get(path)
            assert answer.status_code == 403, path
            assert "没有权限" in answer.text
        assert (await browser.post("/console/accounts", {"username": "x"})).status_code == 403
        home = await browser.get("/console/")
    assert "/console/accounts" not in home.text  # not in the menu either


async def test_a_disabled_account_is_signed_out(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "boss", Role.ADMIN)
    target = await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as boss, Console(console_app.app) as op:
        await boss.sign_in("boss")
        await op.sign_in("xiaolu")
        saved = await boss.post(
            f"/console/accounts/{target}",
            {"display_name": "小鹿", "role": "operator", "disabled": "1"},
        )
        assert saved.status_code == 303, saved.text
        assert (await op.get("/console/")).status_code == 303
        refused = await op.try_sign_in("xiaolu")
    assert refused.status_code == 403
    assert "已停用" in refused.text


async def test_an_oversized_form_is_refused_before_it_is_parsed(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """Sign-in is open to anyone and a console page to any signed-in account: neither reads
    a 20 MB body or thousands of fields (parsing them held the event loop for seconds)."""
    huge = {"username": "x", "password": "y" * (20 * 1024 * 1024), "csrf_token": "z"}
    assert (await console_app.client.post("/console/login", data=huge)).status_code == 413
    many = {f"f{i}": "1" for i in range(50)}
    assert (await console_app.client.post("/console/login", data=many)).status_code == 400
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        big = await browser.post("/console/cohorts", {"name": "x" * (2 * 1024 * 1024)})
        assert big.status_code == 413
        fields = await browser.post("/console/cohorts", {f"f{i}": "1" for i in range(400)})
        assert fields.status_code == 400
        # An ordinary form still goes through the same checks.
        assert (await browser.post("/console/logout")).status_code == 303
