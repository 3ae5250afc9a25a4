"""JS-SDK tickets and web OAuth: get_jsapi_ticket, ticket/get, auth/getuserinfo, and the
authorize page WeCom's client opens (a sandbox page: it signs in as a chosen member)."""

from __future__ import annotations

from html import escape
from urllib.parse import urlencode, urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from app.wecom_sandbox.errcodes import WeComError
from app.wecom_sandbox.jsapi_state import CODE_TTL
from app.wecom_sandbox.records import Json
from app.wecom_sandbox.request import ApiRequest
from app.wecom_sandbox.state import SandboxState


def _limited(state: SandboxState, agentid: int | None) -> None:
    now = state.clock.now()
    jsapi = state.jsapi
    if not jsapi.corp_tickets.allows(state.corp_id, now):
        raise WeComError(45009)
    if not jsapi.app_tickets.allows(agentid, now):
        raise WeComError(45009)
    jsapi.corp_tickets.add(state.corp_id, now)
    jsapi.app_tickets.add(agentid, now)


def get_jsapi_ticket(state: SandboxState, req: ApiRequest) -> Json:
    _limited(state, req.agentid)
    ticket = state.jsapi.ticket("corp", state.clock.now())
    return {"ticket": ticket.value, "expires_in": 7200}


def ticket_get(state: SandboxState, req: ApiRequest) -> Json:
    if req.query.get("type") != "agent_config":
        raise WeComError(40058)
    _limited(state, req.agentid)
    ticket = state.jsapi.ticket(f"agent{req.agentid}", state.clock.now())
    return {"ticket": ticket.value, "expires_in": 7200}


def getuserinfo(state: SandboxState, req: ApiRequest) -> Json:
    code = state.jsapi.codes.get(req.query.get("code", ""))
    now = state.clock.now()
    if code is None or code.used or now - code.issued_at >= CODE_TTL:
        raise WeComError(40029)
    code.used = True
    if not state.jsapi.host_trusted(code.redirect_host):
        raise WeComError(50001)
    if code.userid in state.users:
        return {"userid": code.userid}
    return {"openid": f"o{code.userid}"}


def _picker(request: Request, users: dict[str, str]) -> HTMLResponse:
    links = "".join(
        f'<li><a href="{escape(str(request.url.include_query_params(userid=u)))}">'
        f"{escape(name)}（{escape(u)}）</a></li>"
        for u, name in users.items()
    )
    page = (
        '<!doctype html><meta charset="utf-8"><title>企业微信沙箱：选择登录成员</title>'
        f"<h1>以哪位成员的身份打开？</h1><ul>{links}</ul>"
    )
    return HTMLResponse(page)


async def authorize(request: Request) -> Response:
    """`/connect/oauth2/authorize`: back to `redirect_uri?code=…&state=…` as the member the
    `userid` parameter (a sandbox extension) or `jsapi.signed_in` names, else a picker."""
    state: SandboxState = request.app.state.sandbox
    query = request.query_params
    if query.get("appid") != state.corp_id or query.get("response_type") != "code":
        return HTMLResponse("参数错误：appid 或 response_type 不对", status_code=400)
    redirect = query.get("redirect_uri", "")
    parts = urlsplit(redirect)
    if parts.scheme not in ("http", "https") and not redirect.startswith("/"):
        return HTMLResponse("参数错误：redirect_uri", status_code=400)
    userid = query.get("userid") or state.jsapi.signed_in
    if not userid:
        return _picker(request, state.users)
    code = state.jsapi.mint_code(userid, parts.netloc or request.url.netloc, state.clock.now())
    glue = "&" if "?" in redirect else "?"
    location = f"{redirect}{glue}{urlencode({'code': code, 'state': query.get('state', '')})}"
    return RedirectResponse(location, status_code=302)
