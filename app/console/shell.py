"""The console's own pages: `/` → the console, sign-in, sign-out, password change, 今日.

Sign-in is the one form without a session: its CSRF token is a random value in a cookie of
its own and in the form (double submit), so another site cannot sign a browser in.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from markupsafe import Markup

from app.admin.errors import InvalidInput
from app.api.admin.throttle import client_address
from app.console import accounts
from app.console.forms import Refused, refusals
from app.console.models import Role
from app.console.pages import ConsolePages, NavItem
from app.console.passwords import verify_password
from app.console.route import (
    HEADERS,
    LOGIN_PATH,
    ConsoleSessionDep,
    ViewerDep,
    console_router,
)
from app.console.sessions import COOKIE, LIFETIME, close_session, open_session, signing_key
from app.console.signin import SignInRefused, clear_failures, sign_in
from app.console.templating import console_of, render
from app.deps import RuntimeDep
from app.runtime import Runtime

HOME = "/console/"
LOGIN_COOKIE = "campbot_console_login"
# Sign-in is open to anyone: its form (four short fields) is read only within these bounds.
public = APIRouter(
    include_in_schema=False, max_body_size=16 * 1024, form_limits={"max_fields": 10}
)
pages = console_router("", role=Role.ASSISTANT)

FormText = Annotated[str, Form(max_length=1000)]


def _secure(runtime: Runtime) -> bool:
    return runtime.settings.public_base_url.startswith("https://")


def safe_next(target: str | None) -> str:
    """Only a path of the console itself: never another site (`//host`, `\\host`)."""
    if not target or not target.startswith("/console") or "\\" in target or "//" in target:
        return HOME
    return target


@public.get("/")
async def root() -> Response:
    return RedirectResponse(HOME, status_code=303)


@public.get("/console")
async def console_root() -> Response:
    return RedirectResponse(HOME, status_code=303)


def _login_page(
    request: Request,
    runtime: Runtime,
    *,
    next_: str,
    error: str = "",
    username: str = "",
    status: int = 200,
) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    response = render(
        request,
        "console/login.html",
        {"login_csrf": token, "next": safe_next(next_), "error": error, "username": username},
        status=status,
    )
    response.set_cookie(
        LOGIN_COOKIE,
        token,
        httponly=True,
        samesite="lax",
        secure=_secure(runtime),
        path=LOGIN_PATH,
        max_age=3600,
    )
    response.headers.update(HEADERS)
    return response


@public.get(LOGIN_PATH)
async def login_form(request: Request, runtime: RuntimeDep, next: str | None = None) -> Response:
    return _login_page(request, runtime, next_=next or HOME)


@public.post(LOGIN_PATH)
async def login(
    request: Request,
    runtime: RuntimeDep,
    username: FormText = "",
    password: FormText = "",
    csrf_token: FormText = "",
    next: FormText = HOME,
) -> Response:
    cookie = request.cookies.get(LOGIN_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), csrf_token.encode()):
        message = "登录页面已过期（CSRF 校验失败），请重新输入。"
        return _login_page(request, runtime, next_=next, error=message, status=403)
    try:
        account = await sign_in(
            sessions=runtime.sessions,
            throttle=console_of(request).throttle,
            username=username.strip(),
            password=password,
            address=client_address(request),
            now=runtime.clock.now(),
            tz=runtime.settings.campbot_timezone,
        )
    except SignInRefused as refused:
        return _login_page(
            request,
            runtime,
            next_=next,
            error=refused.message,
            username=username,
            status=refused.status,
        )
    async with runtime.sessions.begin() as session:
        now = runtime.clock.now()
        await clear_failures(session=session, account_id=account.id)
        key = await signing_key(session=session, cache=console_of(request).keys, now=now)
        value = await open_session(
            session=session, account=account, now=now, address=client_address(request), key=key
        )
    response = RedirectResponse(safe_next(next), status_code=303)
    _set_session_cookie(response, value, runtime)
    response.delete_cookie(LOGIN_COOKIE, path=LOGIN_PATH)
    return response


def _set_session_cookie(response: Response, value: str, runtime: Runtime) -> None:
    response.set_cookie(
        COOKIE,
        value,
        httponly=True,
        samesite="lax",
        secure=_secure(runtime),
        path="/",
        max_age=int(LIFETIME.total_seconds()),
    )


@pages.post("/logout")
async def logout(viewer: ViewerDep, session: ConsoleSessionDep, runtime: RuntimeDep) -> Response:
    await close_session(session=session, session_id=viewer.session_id, now=runtime.clock.now())
    response = RedirectResponse(LOGIN_PATH, status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


@pages.get("/")
async def home(request: Request, viewer: ViewerDep) -> Response:
    panels = [p for p in console_of(request).panels if viewer.at_least(p.role)]
    shown = [Markup(html) for p in panels if (html := await p.render(request))]
    return render(request, "console/home.html", {"panels": shown})


@pages.get("/password")
async def password_form(request: Request, done: int = 0) -> Response:
    return render(request, "console/password.html", {"errors": {}, "done": bool(done)})


@pages.post("/password")
async def change_password(
    request: Request,
    viewer: ViewerDep,
    session: ConsoleSessionDep,
    runtime: RuntimeDep,
    current: FormText = "",
    new: FormText = "",
    again: FormText = "",
) -> Response:
    account = (await accounts.get_account(session=session, account_id=viewer.account_id)).account
    await session.commit()  # a read: no connection held while the hash is checked
    try:
        with refusals():
            if not await verify_password(account.password_hash, current):
                raise InvalidInput("current", "当前密码不正确。")
            if new != again:
                raise InvalidInput("again", "两次输入的新密码不一样。")
            now = runtime.clock.now()
            await accounts.set_password(
                session=session,
                actor=viewer.actor,
                now=now,
                account_id=account.id,
                password=new,
                field="new",
            )
    except Refused as refused:
        context = {"errors": refused.problems, "done": False}
        return render(request, "console/password.html", context, status=refused.status)
    # Every session ended with the old password; this browser gets a new one.
    key = await signing_key(session=session, cache=console_of(request).keys, now=now)
    value = await open_session(
        session=session, account=account, now=now, address=client_address(request), key=key
    )
    response = RedirectResponse("/console/password?done=1", status_code=303)
    _set_session_cookie(response, value, runtime)
    return response


PAGES = (ConsolePages("console", pages, nav=(NavItem("今日", HOME, Role.ASSISTANT, 0),)),)
