"""`/sidebar/`: the staff sidebar page (聊天工具栏), its sign-in through WeCom's OAuth, its
static files, and the development harness.

- `GET /sidebar/` without a session sends the member to WeCom's `snsapi_base` authorize URL;
  `GET /sidebar/auth?code&state` takes the code once (`auth/getuserinfo`), sets the signed
  session cookie and goes back to the page without the code (a refresh never spends it
  twice). A reused or expired code is refused (403), saying to reopen the page.
- The page loads WeCom's JS-SDK from CampBot (vendored, `static/vendor/wecom-jssdk`), never
  from a CDN. `GET /sidebar/dev?entry=…&chat_id=…|external_userid=…&userid=…` signs in as
  that member through the sandbox and plays that context with a fake `ww`
  (`static/harness.js`) that records `sendChatMessage`; it exists only on the built-in
  sandbox or for tests (`sidebar_deps.harness_allowed`), else 404.
"""

from __future__ import annotations

import asyncio
import json
from functools import cache
from importlib import resources
from typing import Annotated
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, PackageLoader, select_autoescape

from app.deps import RuntimeDep
from app.first_run import SANDBOX_MOUNT
from app.wecom.errors import WeComError
from app.wecom.jsapi import AUTHORIZE_PATH, authorize_base, authorize_url
from bots.sop import sessions
from bots.sop.sidebar_deps import NO_STORE, harness_allowed

router = APIRouter(prefix="/sidebar", tags=["sidebar"], include_in_schema=False)
_env = Environment(
    loader=PackageLoader("bots.sop", "templates"), autoescape=select_autoescape(["html"])
)
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'"
)
STATIC = {
    "sidebar.js": "application/javascript; charset=utf-8",
    "sidebar.css": "text/css; charset=utf-8",
    "vendor/wecom-jssdk/wecom-jssdk-2.4.4.js": "application/javascript; charset=utf-8",
    "vendor/wecom-jssdk/LICENSE.md": "text/markdown; charset=utf-8",
}
ENTRIES = ("group_chat_tools", "single_chat_tools", "normal")


def _cookie(answer: Response, name: str, value: str, *, max_age: int, secure: bool) -> None:
    answer.set_cookie(
        name,
        value,
        max_age=max_age,
        secure=secure,
        httponly=True,
        samesite="lax",
        path="/sidebar",
    )


@cache
def _static(name: str) -> bytes:
    return resources.files("bots.sop").joinpath("static", name).read_bytes()


@router.get("/static/{name:path}")
async def static(name: str) -> Response:
    if name not in STATIC:
        return Response(status_code=404)
    data = await asyncio.to_thread(_static, name)
    return Response(
        data, media_type=STATIC[name], headers={"Cache-Control": "public, max-age=3600"}
    )


def _next(value: str | None) -> str:
    """Only a path of this page: never another site (an open redirect)."""
    if (
        value
        and value.startswith("/sidebar/")
        and not value.startswith("//")
        and "\\" not in value
    ):
        return value
    return "/sidebar/"


def _secure(runtime: RuntimeDep) -> bool:
    return runtime.settings.public_base_url.startswith("https://")


async def _sign_in(
    request: Request, runtime: RuntimeDep, *, next_path: str, as_user: str | None = None
) -> Response:
    now = runtime.clock.now()
    key = await sessions.key_of(runtime.sessions, now)
    state, cookie = sessions.new_state(key, now)
    settings = runtime.settings
    sandboxed = getattr(request.app.state, "sandbox", None) is not None
    back = f"/sidebar/auth?{urlencode({'next': next_path})}"
    redirect_uri = back if sandboxed else settings.public_base_url + back
    base = SANDBOX_MOUNT + AUTHORIZE_PATH if sandboxed else authorize_base(settings.wecom_api_base)
    url = authorize_url(
        base=base,
        corp_id=settings.wecom_corp_id or "",
        agent_id=settings.wecom_agent_id,
        redirect_uri=redirect_uri,
        state=state,
    )
    if as_user:  # the sandbox's authorize page signs in as the member named (harness only)
        url = url.replace("#wechat_redirect", f"&userid={quote(as_user)}#wechat_redirect")
    answer = RedirectResponse(url, status_code=302, headers=NO_STORE)
    _cookie(answer, sessions.STATE_COOKIE, cookie, max_age=600, secure=_secure(runtime))
    return answer


def _refused(text: str, status: int = 403) -> HTMLResponse:
    page = (
        '<!doctype html><html lang="zh-CN"><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>训练营助手</title><p>{text}</p></html>"
    )
    return HTMLResponse(page, status_code=status, headers=NO_STORE)


@router.get("/auth")
async def auth(
    request: Request,
    runtime: RuntimeDep,
    code: Annotated[str, Query(max_length=512)] = "",
    state: Annotated[str, Query(max_length=128)] = "",
    next: Annotated[str | None, Query(max_length=500)] = None,
) -> Response:
    now = runtime.clock.now()
    key = await sessions.key_of(runtime.sessions, now)
    if not code or not sessions.state_ok(
        key, state, request.cookies.get(sessions.STATE_COOKIE), now
    ):
        return _refused("登录请求已失效，请关闭后重新打开侧边栏。")
    if runtime.wecom is None:
        return _refused("CampBot 还没有配置企业微信。", 503)
    try:
        userid = await runtime.wecom.user_of_code(code=code)
    except WeComError as exc:
        return _refused(f"登录失败：{exc.hint}")
    if userid is None:
        return _refused("只有企业成员可以使用训练营助手。")
    answer = RedirectResponse(_next(next), status_code=303, headers=NO_STORE)
    _cookie(
        answer,
        sessions.COOKIE,
        sessions.issue(key, userid, now),
        max_age=int(sessions.LIFETIME.total_seconds()),
        secure=_secure(runtime),
    )
    answer.delete_cookie(sessions.STATE_COOKIE, path="/sidebar")
    return answer


def _harness_of(request: Request) -> dict[str, str] | None:
    if not harness_allowed(request):
        return None
    raw = request.cookies.get(sessions.HARNESS_COOKIE)
    try:
        found = json.loads(raw) if raw else None
    except ValueError:
        return None
    return found if isinstance(found, dict) else None


@router.get("/", response_class=HTMLResponse)
async def page(request: Request, runtime: RuntimeDep) -> Response:
    now = runtime.clock.now()
    key = await sessions.key_of(runtime.sessions, now)
    staff = sessions.verify(key, request.cookies.get(sessions.COOKIE), now)
    if staff is None:
        return await _sign_in(request, runtime, next_path="/sidebar/")
    settings = runtime.settings
    html = _env.get_template("sidebar.html").render(
        userid=staff.userid,
        config={
            "corpId": settings.wecom_corp_id,
            "agentId": settings.wecom_agent_id,
            "timezone": settings.campbot_timezone,
        },
        harness=_harness_of(request),
    )
    return HTMLResponse(html, headers={**NO_STORE, "Content-Security-Policy": PAGE_POLICY})


@router.get("/dev")
async def dev(
    request: Request,
    runtime: RuntimeDep,
    userid: Annotated[str, Query(min_length=1, max_length=64)],
    entry: Annotated[str, Query()] = "group_chat_tools",
    chat_id: Annotated[str, Query(max_length=128)] = "",
    external_userid: Annotated[str, Query(max_length=128)] = "",
    result: Annotated[str, Query(pattern="^(ok|cancel|fail no permission)$")] = "ok",
) -> Response:
    """Open the sidebar in a played context (development only; 404 with real WeCom)."""
    if not harness_allowed(request) or entry not in ENTRIES:
        return Response(status_code=404)
    context = {
        "entry": entry,
        "chat_id": chat_id,
        "external_userid": external_userid,
        "result": result,
    }
    answer = await _sign_in(request, runtime, next_path="/sidebar/", as_user=userid)
    _cookie(answer, sessions.HARNESS_COOKIE, json.dumps(context), max_age=3600, secure=False)
    return answer


@router.get("/dev/harness.js")
async def harness(request: Request) -> Response:
    if not harness_allowed(request):
        return Response(status_code=404)
    data = await asyncio.to_thread(_static, "harness.js")
    return Response(data, media_type="application/javascript; charset=utf-8", headers=NO_STORE)
