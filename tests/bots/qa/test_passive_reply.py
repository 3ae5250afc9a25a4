"""Q&A's passive reply: the answer carried in the HTTP answer to the member's callback when
the handlers finish within the budget, else one app message — never both, never neither,
even when the commit comes after the callback stopped waiting."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event as sa_event
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from app.api import callback
from app.capability import event_routers
from app.clock import ManualClock
from app.inbox import STUCK_AFTER
from app.inbox_recovery import sweep_once
from app.main import CAPABILITIES
from app.models import InboxEvent
from app.settings import Settings
from app.wecom.events import parse_event
from app.wecom.passive import PassiveReply
from app.wecom_sandbox import callback_xml
from app.wecom_sandbox.sender import CallbackSender
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from bots.dispatch import Context, Dispatcher, Router
from bots.qa.models import QaUnanswered
from tests.admin.conftest import Admin
from tests.bots.qa.conftest import ASKER, Desk, Sessions, Watch, Watched
from tests.support import AES_KEY, AGENT_ID, APP_SECRET, CORP_ID, T0, TOKEN, running_app

ANSWER = "退款请在第 3 天前联系班主任。"


def _before_qa(handler: Callable[[Context], Any]) -> Router:
    """A test-only router whose handler runs on every text before Q&A, then lets it answer."""
    router = Router("before_qa")
    router.on_message("text", priority=0, block=False)(handler)
    return router


def _commit_after_the_callback_left() -> Router:
    """Holds the event's commit (Q&A claims the reply before it) until the callback stopped
    waiting: a commit stuck behind a lock past the callback's deadline."""

    async def hold(ctx: Context) -> None:
        passive, commit = ctx.passive, ctx.session.commit
        assert isinstance(passive, Watched)

        async def held() -> None:
            await passive.gone.wait()
            await commit()

        ctx.session.commit = held  # type: ignore[method-assign]

    return _before_qa(hold)


@pytest.fixture
def extra_routers() -> Callable[[], list[Router]]:
    """Parametrized with a factory: each test (and backend) gets fresh routers."""
    return list


@pytest.fixture
async def desk_with(
    settings: Settings,
    clock: ManualClock,
    engine: AsyncEngine,
    sessions: Sessions,
    extra_routers: Callable[[], list[Router]],
) -> AsyncIterator[Desk]:
    """The Q&A desk (see conftest) with `extra_routers` in front of the product's."""
    sandbox = SandboxState(corp_id=CORP_ID, apps={AGENT_ID: APP_SECRET}, clock=clock)
    sandbox.add_user(ASKER, f"成员{ASKER}")
    async with running_app(
        settings=settings,
        clock=clock,
        engine=engine,
        routers=[*extra_routers(), *event_routers(CAPABILITIES)],
        wecom_transport=sandbox_transport(sandbox),
        sender=False,
    ) as harness:
        wecom = CallbackSender(
            sandbox, harness.client, token=TOKEN, encoding_aes_key=AES_KEY, agent_id=AGENT_ID
        )
        yield Desk(harness, sandbox, wecom, Admin(harness), sessions, clock)


async def test_an_answer_within_the_budget_is_the_http_answer(desk: Desk) -> None:
    rule = await desk.rule(patterns=["怎么退款"], reply=ANSWER)

    sent = await desk.ask("请问 怎么退款？")

    # The answer is WeCom's encrypted, signed reply envelope, not "success".
    assert sent.response.text.startswith("<xml><Encrypt>")
    reply = sent.passive_reply
    assert reply is not None  # read_reply verified its signature and receive id
    assert (reply.to_user, reply.from_user, reply.msg_type) == (ASKER, CORP_ID, "text")
    assert reply.content == ANSWER
    assert reply.create_time == int(desk.clock.now().timestamp())
    assert desk.app_messages() == []
    [row] = await desk.outbox()
    assert (row.channel, row.target, row.status) == ("passive_reply", ASKER, "sent")
    assert row.key.endswith(f":{rule['id']}")
    assert (await desk.admin.get(f"/qa-rules/{rule['id']}")).json()["hits"] == 1


async def test_a_retry_gets_no_second_reply_of_any_kind(desk: Desk) -> None:
    await desk.rule(patterns=["怎么退款"], reply=ANSWER)

    sent = await desk.ask("怎么退款")
    retry = await desk.wecom.redeliver(sent)

    assert sent.passive_reply is not None
    assert (retry.response.status_code, retry.response.text) == (200, "success")
    assert retry.passive_reply is None
    assert desk.app_messages() == []
    assert len(await desk.outbox()) == 1


async def test_a_question_nothing_answers_gets_plain_success(desk: Desk) -> None:
    await desk.rule(patterns=["怎么退款"], reply=ANSWER)

    sent = await desk.ask("直播几点开始")

    assert sent.response.text == "success"
    assert desk.replies() == []
    assert await desk.outbox() == []
    async with desk.sessions() as session:
        [unanswered] = (await session.execute(select(QaUnanswered))).scalars()
    assert unanswered.count == 1


async def test_a_second_reply_to_the_same_question_goes_as_an_app_message(desk: Desk) -> None:
    await desk.rule(patterns=["证书"], reply="first", priority=10, block=False)
    await desk.rule(patterns=["证书"], reply="second", priority=20)

    sent = await desk.ask("证书什么时候发")
    await desk.flush()

    assert sent.passive_reply is not None
    assert sent.passive_reply.content == "first"
    assert desk.app_messages() == ["second"]
    assert [(r.channel, r.status) for r in await desk.outbox()] == [
        ("passive_reply", "sent"),
        ("app_message", "sent"),
    ]


async def _slow(_ctx: Context) -> None:
    await asyncio.sleep(0.3)


@pytest.mark.parametrize("extra_routers", [lambda: [_before_qa(_slow)]])
async def test_past_the_budget_success_and_exactly_one_app_message(
    desk_with: Desk, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = desk_with
    monkeypatch.setattr(callback, "PASSIVE_BUDGET_S", 0.05)
    await desk.rule(patterns=["怎么退款"], reply=ANSWER)

    sent = await desk.ask("怎么退款")
    retry = await desk.wecom.redeliver(sent)

    assert (sent.response.text, retry.response.text) == ("success", "success")
    assert desk.wecom.passive_replies == []
    assert desk.app_messages() == [ANSWER]
    [row] = await desk.outbox()
    assert (row.channel, row.status) == ("app_message", "sent")


@pytest.mark.parametrize("extra_routers", [lambda: [_commit_after_the_callback_left()]])
async def test_a_commit_past_the_deadline_turns_the_claimed_reply_into_one_app_message(
    desk_with: Desk, passives: Watch, monkeypatch: pytest.MonkeyPatch
) -> None:
    desk = desk_with
    monkeypatch.setattr(callback, "PASSIVE_TOTAL_S", 0.5)
    rule = await desk.rule(patterns=["怎么退款"], reply=ANSWER)

    sent = await desk.ask("怎么退款")
    retry = await desk.wecom.redeliver(sent)

    [passive] = passives.made
    assert passive.claimed  # Q&A offered the reply; the callback left before the commit
    assert (sent.response.text, retry.response.text) == ("success", "success")
    assert desk.wecom.passive_replies == []
    assert desk.app_messages() == [ANSWER]
    [row] = await desk.outbox()
    assert (row.channel, row.target, row.status) == ("app_message", ASKER, "sent")
    assert row.key.endswith(f":{rule['id']}")
    assert (row.rate_key, row.sent_at) == (f"app_message:{ASKER}", desk.clock.now())


@pytest.mark.parametrize("extra_routers", [lambda: [_commit_after_the_callback_left()]])
async def test_a_request_cancelled_after_the_claim_leaves_one_app_message(
    desk_with: Desk, passives: Watch
) -> None:
    desk = desk_with
    await desk.rule(patterns=["怎么退款"], reply=ANSWER)

    request = asyncio.ensure_future(desk.ask("怎么退款"))
    async with asyncio.timeout(10):
        await passives.claimed.wait()
    request.cancel()  # the server shuts down, or the client went away
    with pytest.raises(asyncio.CancelledError):
        await request
    dispatcher = desk.harness.app.state.runtime.processor
    assert isinstance(dispatcher, Dispatcher)
    await dispatcher.drain()

    assert desk.wecom.passive_replies == []
    assert desk.app_messages() == [ANSWER]
    [row] = await desk.outbox()
    assert (row.channel, row.status) == ("app_message", "sent")


def _commit_fails_once() -> Router:
    failures = [OperationalError("COMMIT", {}, Exception("database is locked"))]

    def fail(_session: Any) -> None:
        if failures:
            raise failures.pop()

    async def arm(ctx: Context) -> None:
        sa_event.listen(ctx.session.sync_session, "before_commit", fail)

    return _before_qa(arm)


@pytest.mark.parametrize("extra_routers", [lambda: [_commit_fails_once()]])
async def test_a_claimed_reply_whose_commit_fails_goes_out_once_after_the_retry(
    desk_with: Desk,
) -> None:
    desk = desk_with
    await desk.rule(patterns=["怎么退款"], reply=ANSWER)

    sent = await desk.ask("怎么退款")

    # The handler claimed the reply but its transaction did not commit: nothing is carried,
    # nothing is recorded, and the event waits in the inbox for the sweeper.
    assert sent.response.text == "success"
    assert await desk.outbox() == []
    async with desk.sessions() as session:
        [row] = (await session.execute(select(InboxEvent))).scalars()
    assert row.status == "received"

    desk.clock.advance(STUCK_AFTER + timedelta(seconds=1))
    runtime = desk.harness.app.state.runtime
    await sweep_once(sessions=desk.sessions, processor=runtime.processor, clock=desk.clock)

    assert desk.wecom.passive_replies == []
    assert desk.app_messages() == [ANSWER]
    [out] = await desk.outbox()
    assert (out.channel, out.status) == ("app_message", "sent")


def test_only_member_texts_to_the_app_wait_for_a_reply() -> None:
    text = callback_xml.member_text(
        CORP_ID, userid=ASKER, content="怎么退款", msg_id="1", agent_id=AGENT_ID, at=T0
    )
    no_agent = text.replace(f"<AgentID>{AGENT_ID}</AgentID>", "")
    contact = callback_xml.external_contact_added(
        CORP_ID, userid=ASKER, external_userid="wm1", state="", welcome_code="W", at=T0
    )

    assert callback._may_reply(parse_event(text))
    assert not callback._may_reply(parse_event(no_agent))
    assert not callback._may_reply(parse_event(contact))


async def test_the_hand_off_has_exactly_one_owner() -> None:
    loop = asyncio.get_running_loop()

    # The callback gave up first: the handler's claim is refused (it sends an app message).
    closed = PassiveReply()
    assert await closed.wait(0, deadline=loop.time() + 1) is None
    assert not closed.claim("迟到的回复")

    # The handler claimed within the budget: the callback waits for the commit, past it.
    claimed = PassiveReply()
    assert claimed.claim("回复")
    waiting = asyncio.ensure_future(claimed.wait(0.01, deadline=loop.time() + 5))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    claimed.settle(committed=True)
    assert await waiting == "回复"
    assert await claimed.carried(1.0)

    # A claim whose transaction failed is void: the callback answers without it.
    failed = PassiveReply()
    assert failed.claim("回复")
    failed.settle(committed=False)
    assert await failed.wait(1.0, deadline=loop.time() + 1) is None

    # Only one reply fits in the answer.
    once = PassiveReply()
    assert once.claim("first")
    assert not once.claim("second")


async def test_a_claim_the_callback_left_is_the_dispatchers_to_send() -> None:
    loop = asyncio.get_running_loop()

    # The deadline passed with the commit still pending: the callback answers without it.
    late = PassiveReply()
    assert late.claim("回复")
    assert await late.wait(1.0, deadline=loop.time() + 0.02) is None
    late.settle(committed=True)
    assert not await late.carried(1.0)

    # The request was cancelled between the commit and the callback taking the reply.
    cancelled = PassiveReply()
    assert cancelled.claim("回复")
    waiting = asyncio.ensure_future(cancelled.wait(1.0, deadline=loop.time() + 5))
    await asyncio.sleep(0)  # waiting now
    cancelled.settle(committed=True)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert not await cancelled.carried(1.0)

    # Nobody takes a committed reply in time: the dispatcher keeps it, a late callback
    # gets nothing.
    untaken = PassiveReply()
    assert untaken.claim("回复")
    untaken.settle(committed=True)
    assert not await untaken.carried(0.01)
    assert await untaken.wait(1.0, deadline=loop.time() + 1) is None
