"""WeComClient against the sandbox: tokens, retries by errcode, typed calls, media cache."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from app.wecom.client import WeComClient
from app.wecom.errors import (
    GetTokenError,
    RateLimitedError,
    SystemBusyError,
    TokenError,
    WeComTransportError,
)
from app.wecom_sandbox.state import SandboxState
from tests.support import AGENT_ID, APP_SECRET, CORP_ID

SEND = "/cgi-bin/message/send"


@pytest.fixture(autouse=True)
def _corp(sandbox: SandboxState) -> None:
    sandbox.add_user("zhangsan")


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


def _client(
    wecom_http: httpx.AsyncClient,
    sessions: async_sessionmaker[AsyncSession],
    clock: ManualClock,
    sleeps: Sleeps,
    secret: str = APP_SECRET,
) -> WeComClient:
    return WeComClient(
        http=wecom_http,
        corp_id=CORP_ID,
        agent_id=AGENT_ID,
        secret=secret,
        sessions=sessions,
        clock=clock,
        sleep=sleeps,
    )


@pytest.fixture
def client(wecom_http, sessions, clock, sleeps) -> WeComClient:
    return _client(wecom_http, sessions, clock, sleeps)


_counter = iter(range(1_000_000))


async def _send(client: WeComClient) -> str:
    # Distinct content each time: the client asks WeCom to drop exact repeats.
    message = {"msgtype": "text", "text": {"content": f"今天的打卡任务 #{next(_counter)}"}}
    return (await client.send_app_message(touser=["zhangsan"], message=message)).msgid


async def test_token_is_cached_and_refreshed_ahead_of_expiry(client, sandbox, clock) -> None:
    from datetime import timedelta

    await _send(client)
    await _send(client)
    assert sandbox.gettoken_count == 1
    clock.advance(timedelta(seconds=7200 - 200))  # inside the 5-minute margin
    await _send(client)
    assert sandbox.gettoken_count == 2
    assert [c.errcode for c in sandbox.calls_to(SEND)] == [0, 0, 0]


@pytest.mark.parametrize("errcode", [42001, 40014, 40001])
async def test_rejected_token_is_refreshed_once_and_the_call_succeeds(
    client, sandbox, errcode: int
) -> None:
    await _send(client)
    sandbox.fail_next(SEND, errcode)
    assert await _send(client)
    assert sandbox.gettoken_count == 2
    assert [c.errcode for c in sandbox.calls_to(SEND)] == [0, errcode, 0]
    assert len(sandbox.delivered()) == 2


async def test_early_invalidation_by_wecom(client, sandbox) -> None:
    await _send(client)
    sandbox.invalidate_tokens()
    await _send(client)
    assert sandbox.gettoken_count == 2


async def test_token_rejected_forever_gives_up_after_one_retry(client, sandbox) -> None:
    sandbox.fail_forever(SEND, 40014)
    with pytest.raises(TokenError) as caught:
        await _send(client)
    assert caught.value.errcode == 40014
    assert "WECOM_SECRET" in caught.value.hint
    assert len(sandbox.calls_to(SEND)) == 2
    assert sandbox.gettoken_count == 2


async def test_cold_cache_twenty_concurrent_callers_one_gettoken(client, sandbox) -> None:
    msgids = await asyncio.gather(*(_send(client) for _ in range(20)))
    assert len(set(msgids)) == 20
    assert sandbox.gettoken_count == 1


async def test_token_is_shared_between_processes_through_the_database(
    wecom_http, sessions, clock, sleeps, sandbox
) -> None:
    first, second = (_client(wecom_http, sessions, clock, sleeps) for _ in range(2))
    await _send(first)
    await _send(second)  # a second instance: its memory is empty, the database is not
    assert sandbox.gettoken_count == 1


async def test_wrong_secret_is_a_permanent_gettoken_error(
    wecom_http, sessions, clock, sleeps
) -> None:
    client = _client(wecom_http, sessions, clock, sleeps, secret="wrong")
    with pytest.raises(GetTokenError) as caught:
        await _send(client)
    assert caught.value.errcode == 40001
    assert not caught.value.retryable


async def test_system_busy_is_retried_three_times_with_backoff(client, sandbox, sleeps) -> None:
    await _send(client)
    sandbox.fail_next(SEND, -1, times=2)
    await _send(client)
    assert sleeps.waits == [0.5, 1.0]
    assert len(sandbox.delivered()) == 2

    sandbox.fail_forever(SEND, -1)
    with pytest.raises(SystemBusyError):
        await _send(client)
    assert sleeps.waits == [0.5, 1.0, 0.5, 1.0, 2.0]


@pytest.mark.parametrize(("errcode", "wait"), [(45009, 60.0), (45033, 10.0)])
async def test_rate_limit_is_raised_for_the_sender_to_wait(
    client, sandbox, sleeps, errcode: int, wait: float
) -> None:
    await _send(client)
    sandbox.fail_next(SEND, errcode)
    with pytest.raises(RateLimitedError) as caught:
        await _send(client)
    assert caught.value.retry_after == wait
    assert caught.value.retryable
    assert sandbox.gettoken_count == 1  # no token refresh
    assert sleeps.waits == []  # and no retry inside the client


async def test_lost_answer_is_a_transport_error_and_not_repeated(client, sandbox) -> None:
    await _send(client)
    sandbox.accept_then_drop(SEND)
    with pytest.raises(WeComTransportError):
        await _send(client)
    assert len(sandbox.delivered()) == 2  # WeCom did get it
    assert len(sandbox.calls_to(SEND)) == 2  # and the client did not send it again


async def test_gateway_5xx_is_retryable(client, sandbox) -> None:
    sandbox.respond_5xx(SEND)
    with pytest.raises(WeComTransportError) as caught:
        await _send(client)
    assert caught.value.retryable


async def test_webhook_never_carries_a_token_and_hits_the_robot_limit(client, sandbox) -> None:
    sandbox.add_robot("robot-key-1")
    message = {"msgtype": "text", "text": {"content": "今日任务"}}
    for _ in range(20):
        await client.send_webhook(key="robot-key-1", message=message)
    with pytest.raises(RateLimitedError) as caught:
        await client.send_webhook(key="robot-key-1", message=message)
    assert caught.value.errcode == 45009
    assert sandbox.gettoken_count == 0
    assert all("access_token" not in c.query for c in sandbox.calls_to("/cgi-bin/webhook/send"))


async def test_media_is_uploaded_once_per_content(client, sandbox) -> None:
    png = b"\x89PNG\r\n\x1a\n" + b"poster" * 100
    first = await client.upload_media(kind="image", filename="a.png", content=png)
    second = await client.upload_media(kind="image", filename="b.png", content=png)
    other = await client.upload_media(kind="image", filename="c.png", content=png + b"x")
    assert first == second != other
    assert len(sandbox.calls_to("/cgi-bin/media/upload")) == 2


async def test_typed_customer_contact_calls(client, sandbox) -> None:
    sandbox.add_external_contact(
        "wmStudent1", name="小王", follow_userid="zhangsan", state="camp42"
    )
    contact = await client.get_external_contact(external_userid="wmStudent1")
    assert contact.external_contact.name == "小王"
    assert contact.follow_user[0].userid == "zhangsan"

    sandbox.add_customer_group("wrGroup1", owner="zhangsan", members=["wmStudent1"])
    chat = await client.get_group_chat(chat_id="wrGroup1")
    assert chat.owner == "zhangsan"
    assert [m.userid for m in chat.member_list if m.type == 2] == ["wmStudent1"]
    listing = await client.list_group_chats()
    assert [g.chat_id for g in listing.group_chat_list] == ["wrGroup1"]

    tag_id = sandbox.add_corp_tag("渠道", "抖音")
    groups = await client.get_corp_tag_list()
    assert [t.id for g in groups for t in g.tag] == [tag_id]
    await client.mark_tag(userid="zhangsan", external_userid="wmStudent1", add_tag=[tag_id])

    task = await client.add_msg_template(
        chat_type="group", sender="zhangsan", chat_ids=["wrGroup1"], text="喜报！"
    )
    assert task.msgid
    result = await client.get_groupmsg_send_result(msgid=task.msgid, userid="zhangsan")
    assert [item.status for item in result.send_list] == [0]  # waits for the owner
    await client.remind_groupmsg_send(msgid=task.msgid)


async def test_wecom_drops_a_repeated_app_message(client, sandbox) -> None:
    """enable_duplicate_check closes the lost-answer window for app messages."""
    message = {"msgtype": "text", "text": {"content": "明晚 8 点直播"}}
    await client.send_app_message(touser=["zhangsan"], message=message)
    await client.send_app_message(touser=["zhangsan"], message=message)
    assert len(sandbox.delivered()) == 1
    assert sandbox.calls_to(SEND)[0].json["enable_duplicate_check"] == 1
