"""The sidebar's HTTP side, as the WeCom client reaches it: sign-in through OAuth (a code works
once), the JS-SDK signatures, a group's card and a student's, posting an item once however
often tapped, and 403 for what another staff member runs; the harness is not there with real
WeCom settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from app.admin.common import Actor
from app.channels.messages import OutMessage
from app.channels.reach import Channel, Destination, enqueue_message
from app.clock import ManualClock
from app.console import accounts
from app.console.models import ConsoleAccount, Role
from app.models import GroupMembership
from app.settings import Settings
from app.wecom.jsapi import jsapi_signature
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from bots.sop import service
from bots.sop.notices import escalate_overdue, notify_due
from tests.bots.checkin.camp import T_START, local, make_cohort
from tests.bots.sop.camp import ASSISTANT, CHAT, OWNER, customer_camp
from tests.support import AppHarness, running_app


@pytest.fixture
async def app(
    settings: Settings, clock: ManualClock, engine: AsyncEngine, sandbox: SandboxState
) -> AsyncIterator[AppHarness]:
    for userid in (OWNER, ASSISTANT, "wangwu"):
        sandbox.add_user(userid)
    async with running_app(
        settings=settings, clock=clock, engine=engine, wecom_transport=sandbox_transport(sandbox)
    ) as running:
        yield running


async def _sop_item(session: AsyncSession, key: str, message: OutMessage, *, title: str) -> int:
    """A 群SOP item for the assistant to post in CHAT, due on day 1 at 08:00."""
    row_id = await enqueue_message(
        session=session,
        key=key,
        destination=Destination(Channel.STAFF, CHAT, sender=ASSISTANT, chat="group"),
        message=message,
        now=T_START,
        not_before=local(1, 8),
        title=title,
    )
    assert row_id is not None  # a fresh key
    return row_id


async def sign_in(app: AppHarness, sandbox: SandboxState, clock, userid: str) -> httpx.Response:
    """What WeCom's client does: open the page, follow the authorize redirect, come back."""
    client = app.client
    client.cookies.clear()
    first = await client.get("/sidebar/")
    assert first.status_code == 302
    location = urlsplit(first.headers["location"])
    assert location.fragment == "wechat_redirect"
    query = parse_qs(location.query)
    assert query["scope"] == ["snsapi_base"]
    back = urlsplit(query["redirect_uri"][0])
    code = sandbox.jsapi.mint_code(userid, back.netloc, clock.now())
    return await client.get(
        f"{back.path}?{back.query}", params={"code": code, "state": query["state"][0]}
    )


async def test_sign_in_once_per_code(app: AppHarness, sandbox: SandboxState, clock) -> None:
    done = await sign_in(app, sandbox, clock, ASSISTANT)
    assert done.status_code == 303
    assert done.headers["location"] == "/sidebar/"  # back without the code
    page = await app.client.get("/sidebar/")
    assert page.status_code == 200
    assert "训练营助手" in page.text
    assert "/sidebar/static/vendor/wecom-jssdk/wecom-jssdk-2.4.4.js" in page.text
    assert "harness" not in page.text
    # The same code again (a refresh with ?code= in the URL, with a fresh state) is refused
    # by WeCom (40029), and the page says to reopen it: 403.
    app.client.cookies.clear()
    code = sandbox.jsapi.mint_code(ASSISTANT, "campbot", clock.now())
    states = []
    for _ in range(2):
        again = await app.client.get("/sidebar/")
        query = parse_qs(urlsplit(again.headers["location"]).query)
        states.append(query["state"][0])
        back = urlsplit(query["redirect_uri"][0]).path
        answer = await app.client.get(back, params={"code": code, "state": states[-1]})
        if len(states) == 1:
            assert answer.status_code == 303
            app.client.cookies.delete("campbot_sidebar", path="/sidebar")
    assert answer.status_code == 403
    assert "登录码" in answer.text
    # A state this browser was not given is refused before WeCom is asked.
    forged = await app.client.get(back, params={"code": "x", "state": "0" * 32})
    assert forged.status_code == 403


async def test_signatures_use_the_corp_and_the_agent_tickets(
    app: AppHarness, sandbox: SandboxState, clock
) -> None:
    assert (
        await app.client.post("/sidebar/api/jsapi/config", json={"url": "x"})
    ).status_code == 401
    await sign_in(app, sandbox, clock, ASSISTANT)
    url = "https://camp.example.com/sidebar/?code=abc&state=x"
    corp = (await app.client.post("/sidebar/api/jsapi/config", json={"url": url + "#/a"})).json()
    agent = (await app.client.post("/sidebar/api/jsapi/agent", json={"url": url})).json()
    tickets = {t.value.split("-", 1)[0]: t.value for t in sandbox.jsapi.issued.values()}
    for signed, ticket in ((corp, tickets["corp"]), (agent, tickets[f"agent{1000002}"])):
        expected = jsapi_signature(
            ticket=ticket, noncestr=signed["nonceStr"], timestamp=signed["timestamp"], url=url
        )
        assert signed["signature"] == expected
    too_long = await app.client.post("/sidebar/api/jsapi/config", json={"url": "x" * 5000})
    assert too_long.status_code == 422


async def test_cards_posting_once_and_403_elsewhere(
    app: AppHarness, sandbox: SandboxState, clock: ManualClock, sessions
) -> None:
    camp = await customer_camp(sessions, students=("小林", "Amy"))
    async with sessions.begin() as session:
        session.add(
            GroupMembership(
                group_id=camp.group_id,
                member_key="wm小林1",
                member_id=camp.students["小林"],
                joined_at=T_START,
            )
        )
        item = await _sop_item(
            session,
            "sop-test",
            OutMessage("text", content="☀️ 早上好！今天是第 1 天"),
            title="第 1 天 今日任务",
        )
    clock.set(local(1, 8, 5))
    await sign_in(app, sandbox, clock, ASSISTANT)
    card = (await app.client.get(f"/sidebar/api/groups/{CHAT}")).json()
    assert card["name"] == "6期学员群"
    assert [(i["id"], i["text"]) for i in card["items"]] == [(item, "☀️ 早上好！今天是第 1 天")]
    assert card["checkins"] == {"members": 1, "checked_in": 0, "missing": ["小林"]}
    taps = [(await app.client.post(f"/sidebar/api/tasks/{item}/sent")).json() for _ in range(2)]
    assert [t["recorded"] for t in taps] == [True, False]
    assert taps[0]["done_at"] == taps[1]["done_at"]
    assert (await app.client.get(f"/sidebar/api/groups/{CHAT}")).json()["items"] == []
    # 小林 follows the owner, not the assistant: the assistant may not see his card.
    assert (await app.client.get("/sidebar/api/students/wm小林1")).status_code == 403

    await sign_in(app, sandbox, clock, OWNER)
    student = (await app.client.get("/sidebar/api/students/wm小林1")).json()
    assert (student["name"], student["streak"], student["camp_day"]) == ("小林", 0, 1)
    assert "/h5/m/" in student["h5_url"]
    assert student["reminder"] is not None
    assert "小林" in student["reminder"]

    await sign_in(app, sandbox, clock, "wangwu")  # runs no group, follows nobody
    assert (await app.client.get(f"/sidebar/api/groups/{CHAT}")).status_code == 403
    assert (await app.client.get("/sidebar/api/students/wm小林1")).status_code == 403
    assert (await app.client.post(f"/sidebar/api/tasks/{item}/sent")).status_code == 403
    assert (await app.client.get("/sidebar/api/groups/wrNobody")).status_code == 404


async def test_an_items_image_is_flagged_in_lists_and_uploaded_whole(
    app: AppHarness, sandbox: SandboxState, clock: ManualClock, sessions
) -> None:
    await customer_camp(sessions)
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # enough of a PNG for media/upload
    ids = []
    async with sessions.begin() as session:
        for key, message in (
            ("with-image", OutMessage("image", image=png)),
            ("text-only", OutMessage("text", content="今天的内容")),
        ):
            ids.append(await _sop_item(session, key, message, title=key))
    clock.set(local(1, 8, 5))
    await sign_in(app, sandbox, clock, ASSISTANT)
    mine = (await app.client.get("/sidebar/api/tasks")).json()["items"]
    assert [(i["id"], i["has_image"]) for i in mine] == [(ids[0], True), (ids[1], False)]
    uploaded = await app.client.post(f"/sidebar/api/tasks/{ids[0]}/media")
    assert uploaded.status_code == 200, uploaded.text
    assert sandbox.media[uploaded.json()["mediaid"]].data == png
    assert (await app.client.post(f"/sidebar/api/tasks/{ids[1]}/media")).status_code == 404


async def test_items_carry_the_servers_overdue_flag_by_the_cohorts_escalation_time(
    app: AppHarness, sandbox: SandboxState, clock: ManualClock, sessions
) -> None:
    camp = await customer_camp(sessions)
    async with sessions.begin() as session:
        item = await _sop_item(
            session,
            "sop-overdue",
            OutMessage("text", content="今天的内容"),
            title="第 1 天 今日任务",
        )

    async def overdue() -> list[tuple[int, bool]]:
        """What the page is told, in a chat and outside one (the same item)."""
        await sign_in(app, sandbox, clock, ASSISTANT)
        mine = (await app.client.get("/sidebar/api/tasks")).json()["items"]
        card = (await app.client.get(f"/sidebar/api/groups/{CHAT}")).json()["items"]
        assert [i["overdue"] for i in mine] == [i["overdue"] for i in card]
        return [(i["id"], i["overdue"]) for i in mine]

    # The default escalation time (30 minutes), told or not yet told to staff.
    clock.set(local(1, 8, 29))
    assert await overdue() == [(item, False)]
    clock.set(local(1, 8, 30))
    assert await overdue() == [(item, True)]
    async with sessions.begin() as session:
        assert await notify_due(session=session, now=local(1, 8, 1)) == 1
        assert await escalate_overdue(session=session, now=local(1, 8, 30)) == 1
    assert await overdue() == [(item, True)]
    # The cohort's own setting moves the sidebar's flag with the escalation.
    async with sessions.begin() as session:
        await service.put_settings(
            session=session,
            cohort_id=camp.cohort_id,
            now=T_START,
            remind_after_minutes=None,
            escalate_after_minutes=45,
            operator_userids=None,
        )
    assert await overdue() == [(item, False)]
    clock.set(local(1, 8, 45))
    assert await overdue() == [(item, True)]


async def test_linked_console_accounts_see_the_cohorts_they_run(
    app: AppHarness, sandbox: SandboxState, clock: ManualClock, sessions
) -> None:
    camp = await customer_camp(sessions, students=("小林",))
    async with sessions.begin() as session:
        other = await make_cohort(session, state="camp7")
        for username, role, userid, cohorts in (
            ("wangwu", Role.ASSISTANT, "wangwu", [camp.cohort_id]),
            ("qianqi", Role.ASSISTANT, "qianqi", [other.id]),
            ("zhaoliu", Role.OPERATOR, "zhaoliu", []),
        ):
            sandbox.add_user(userid)
            await accounts.create_account(
                session=session,
                actor=Actor("test"),
                now=T_START,
                username=username,
                display_name=username,
                role=role,
                password="一个够长的密码-123",
                wecom_userid=userid,
                cohort_ids=cohorts,
            )
    clock.set(local(1, 8, 5))
    # An assistant's account in this cohort, and an operator's: the group and its student.
    for userid in ("wangwu", "zhaoliu"):
        await sign_in(app, sandbox, clock, userid)
        assert (await app.client.get(f"/sidebar/api/groups/{CHAT}")).status_code == 200
        assert (await app.client.get("/sidebar/api/students/wm小林1")).status_code == 200
    # An assistant of another cohort: neither.
    await sign_in(app, sandbox, clock, "qianqi")
    assert (await app.client.get(f"/sidebar/api/groups/{CHAT}")).status_code == 403
    assert (await app.client.get("/sidebar/api/students/wm小林1")).status_code == 403
    # A disabled account grants nothing.
    async with sessions.begin() as session:
        account = await session.scalar(
            select(ConsoleAccount).where(ConsoleAccount.username == "zhaoliu")
        )
        assert account is not None
        account.disabled_at = T_START
    await sign_in(app, sandbox, clock, "zhaoliu")
    assert (await app.client.get(f"/sidebar/api/groups/{CHAT}")).status_code == 403
    assert (await app.client.get("/sidebar/api/students/wm小林1")).status_code == 403


async def test_the_harness_is_not_served_with_real_wecom_settings(app: AppHarness) -> None:
    assert (await app.client.get("/sidebar/dev", params={"userid": "lisi"})).status_code == 404
    assert (await app.client.get("/sidebar/dev/harness.js")).status_code == 404
    sdk = await app.client.get("/sidebar/static/vendor/wecom-jssdk/wecom-jssdk-2.4.4.js")
    assert sdk.status_code == 200
    assert sdk.content.startswith(b"var ww=function")
    assert (await app.client.get("/sidebar/static/../models.py")).status_code == 404
