"""JS-SDK signatures (WeCom's published vectors), the tickets cached in SQL and fetched once
however many pages ask at once, and the OAuth code that works once."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from app.wecom.client import WeComClient
from app.wecom.errors import WeComAPIError
from app.wecom.jsapi import authorize_base, authorize_url, jsapi_signature
from app.wecom_sandbox.state import SandboxState
from tests.support import AGENT_ID, APP_SECRET, CORP_ID

TICKET = "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"


@pytest.mark.parametrize(
    ("url", "signature"),
    [
        # developer doc 96909 (the self-built app's 90506)
        ("http://mp.weixin.qq.com?params=value", "0f9de62fce790f9a083d5c99e95740ceb90c27ed"),
        # WeChat 公众号's copy of the same vector, without the query
        ("http://mp.weixin.qq.com", "f4d90daf4b3bca3078ab155816175ba34c443a7b"),
    ],
)
def test_the_signature_equals_wecoms_published_vectors(url: str, signature: str) -> None:
    assert (
        jsapi_signature(ticket=TICKET, noncestr="Wm3WZYTPz0wzccnW", timestamp=1414587457, url=url)
        == signature
    )
    # What follows `#` is not signed (the SDK signs location.href without it).
    assert (
        jsapi_signature(
            ticket=TICKET, noncestr="Wm3WZYTPz0wzccnW", timestamp=1414587457, url=url + "#/x"
        )
        == signature
    )


async def test_a_ticket_is_fetched_once_for_20_concurrent_page_loads(
    wecom_client: WeComClient, sessions, clock, wecom_http, sandbox: SandboxState
) -> None:
    pages = [f"https://camp.example.com/sidebar/?n={n}" for n in range(20)]
    signed = await asyncio.gather(
        *(wecom_client.tickets.config(url, timestamp=1) for url in pages),
        *(wecom_client.tickets.agent_config(url, timestamp=1) for url in pages),
    )
    assert sandbox.jsapi.fetch_count("corp") == 1
    assert sandbox.jsapi.fetch_count(f"agent{AGENT_ID}") == 1
    assert len({s.signature for s in signed}) == 40
    # Another instance (its own client, the same database) takes the stored tickets.
    other = WeComClient(
        http=wecom_http,
        corp_id=CORP_ID,
        agent_id=AGENT_ID,
        secret=APP_SECRET,
        sessions=sessions,
        clock=clock,
    )
    await other.tickets.config(pages[0], timestamp=1)
    await other.tickets.agent_config(pages[0], timestamp=1)
    assert sandbox.jsapi.fetch_count("corp") == 1
    # Close to its 7200 s, the ticket is fetched again, once.
    clock.advance(timedelta(seconds=7200 - 200))
    await asyncio.gather(*(wecom_client.tickets.config(u, timestamp=2) for u in pages))
    assert sandbox.jsapi.fetch_count("corp") == 2


async def test_the_sandbox_caps_ticket_fetches_at_100_an_hour_per_app(
    wecom_client: WeComClient, sandbox: SandboxState
) -> None:
    for _ in range(100):
        await wecom_client.get_agent_config_ticket()
    with pytest.raises(WeComAPIError) as refused:
        await wecom_client.get_agent_config_ticket()
    assert refused.value.errcode == 45009


async def test_an_oauth_code_works_once(
    wecom_client: WeComClient, sandbox: SandboxState, clock
) -> None:
    sandbox.add_user("lisi", "李助教")
    code = sandbox.jsapi.mint_code("lisi", "camp.example.com", clock.now())
    assert await wecom_client.user_of_code(code=code) == "lisi"
    with pytest.raises(WeComAPIError) as reused:
        await wecom_client.user_of_code(code=code)
    assert reused.value.errcode == 40029
    assert "登录码" in reused.value.hint
    stale = sandbox.jsapi.mint_code("lisi", "camp.example.com", clock.now())
    clock.advance(timedelta(minutes=5))
    with pytest.raises(WeComAPIError):
        await wecom_client.user_of_code(code=stale)
    sandbox.jsapi.trusted_hosts = {"camp.example.com"}
    foreign = sandbox.jsapi.mint_code("lisi", "evil.example.com", clock.now())
    with pytest.raises(WeComAPIError) as untrusted:
        await wecom_client.user_of_code(code=foreign)
    assert untrusted.value.errcode == 50001


def test_the_authorize_url_is_wecoms_or_the_simulators() -> None:
    assert authorize_base("https://qyapi.weixin.qq.com").startswith("https://open.weixin.qq.com/")
    assert (
        authorize_base("http://127.0.0.1:9000") == "http://127.0.0.1:9000/connect/oauth2/authorize"
    )
    url = authorize_url(
        base="https://open.weixin.qq.com/connect/oauth2/authorize",
        corp_id=CORP_ID,
        agent_id=AGENT_ID,
        redirect_uri="https://camp.example.com/sidebar/auth?next=/sidebar/",
        state="abc123",
    )
    assert url.endswith("#wechat_redirect")
    assert "scope=snsapi_base" in url
    assert "redirect_uri=https%3A%2F%2Fcamp.example.com%2Fsidebar%2Fauth" in url
