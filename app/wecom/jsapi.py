"""The JS-SDK's signatures and WeCom's web OAuth, for the staff sidebar (聊天工具栏).

- Two tickets, one algorithm: the corp's jsapi ticket signs `config`, the app's agent
  ticket signs `agentConfig` (the chat APIs need the app's identity). Signature =
  sha1("jsapi_ticket=T&noncestr=N&timestamp=S&url=U"), the URL without its `#…`, nothing
  re-encoded, the timestamp in seconds (developer doc 90506).
- Tickets live 7200 s and WeCom allows 400 fetches an hour per corp and 100 per app, so each
  is cached in SQL and shared by every instance exactly like the access token (a `TokenStore`
  under its own key): fetched once, single-flight, refreshed ahead of expiry — never per page.
- OAuth `snsapi_base`: the page sends the member to WeCom's authorize URL and gets back a
  `code`, which `auth/getuserinfo` turns into their userid once (a code is single-use and lives
  5 minutes; `WeComClient.user_of_code`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import urlencode

from app.wecom.tokens import TokenStore

OPEN_AUTHORIZE = "https://open.weixin.qq.com/connect/oauth2/authorize"
DEFAULT_API_BASE = "https://qyapi.weixin.qq.com"
AUTHORIZE_PATH = "/connect/oauth2/authorize"


def jsapi_signature(*, ticket: str, noncestr: str, timestamp: int, url: str) -> str:
    """WeCom's JS-SDK signature of `url` (its `#…` dropped) with `ticket`."""
    page = url.split("#", 1)[0]
    plain = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={page}"
    return hashlib.sha1(plain.encode("utf-8"), usedforsecurity=False).hexdigest()


@dataclass(frozen=True, slots=True)
class Signed:
    """What `ww.register`'s signature callbacks answer (camelCase as the SDK wants it)."""

    timestamp: int
    nonce_str: str
    signature: str


def sign(*, ticket: str, url: str, timestamp: int, nonce: str | None = None) -> Signed:
    nonce = nonce or secrets.token_urlsafe(12)
    signature = jsapi_signature(ticket=ticket, noncestr=nonce, timestamp=timestamp, url=url)
    return Signed(timestamp, nonce, signature)


class Tickets:
    """The corp's and the app's jsapi tickets, shared through the database."""

    def __init__(self, *, corp: TokenStore, agent: TokenStore) -> None:
        self.corp = corp
        self.agent = agent

    async def config(self, url: str, *, timestamp: int) -> Signed:
        return sign(ticket=await self.corp.get(), url=url, timestamp=timestamp)

    async def agent_config(self, url: str, *, timestamp: int) -> Signed:
        return sign(ticket=await self.agent.get(), url=url, timestamp=timestamp)


def authorize_base(api_base: str) -> str:
    """Where staff are sent to sign in: WeCom's own page, or a simulator's (WECOM_API_BASE
    pointing at `campbot sandbox` serves it too)."""
    if api_base.rstrip("/") == DEFAULT_API_BASE:
        return OPEN_AUTHORIZE
    return api_base.rstrip("/") + AUTHORIZE_PATH


def authorize_url(
    *, base: str, corp_id: str, agent_id: int | None, redirect_uri: str, state: str
) -> str:
    """`snsapi_base` (silent) authorize URL; WeCom wants `#wechat_redirect` at the end."""
    query = {
        "appid": corp_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": "snsapi_base",
        "state": state,
    }
    if agent_id is not None:
        query["agentid"] = str(agent_id)
    return f"{base}?{urlencode(query)}#wechat_redirect"
