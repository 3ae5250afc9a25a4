"""WeCom's side of callbacks: encrypted, signed, consistent with the sandbox state."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from xml.etree import ElementTree

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from app.clock import ManualClock
from app.wecom.crypto import CallbackCrypto
from app.wecom.events import ExternalChatEvent, TextMessage, parse_event
from app.wecom_sandbox.sender import CallbackSender
from app.wecom_sandbox.state import SandboxState
from tests.support import AES_KEY, TOKEN, AppHarness, inbox_rows
from tests.support import CORP_ID as CAMPBOT_CORP_ID
from tests.wecom_sandbox.support import AGENT, CORP_ID, SandboxApi

STUDENT = "wmStudentAxxxxxxxxxxxxxxxxxxx"


@dataclass
class Receiver:
    """CampBot's callback endpoint reduced to: verify, decrypt, remember, answer."""

    crypto: CallbackCrypto = field(
        default_factory=lambda: CallbackCrypto(
            token=TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID
        )
    )
    plaintexts: list[str] = field(default_factory=list)
    raw: list[tuple[str, bytes]] = field(default_factory=list)
    status: int = 200

    async def post(self, request: Request) -> PlainTextResponse:
        body = await request.body()
        self.raw.append((str(request.url.query), body))
        encrypt = ElementTree.fromstring(body).findtext("Encrypt") or ""
        q = request.query_params
        self.plaintexts.append(
            self.crypto.verify_and_decrypt(
                msg_signature=q["msg_signature"],
                timestamp=q["timestamp"],
                nonce=q["nonce"],
                encrypt=encrypt,
            )
        )
        return PlainTextResponse("success", status_code=self.status)

    async def get(self, request: Request) -> PlainTextResponse:
        q = request.query_params
        echo = self.crypto.verify_and_decrypt(
            msg_signature=q["msg_signature"],
            timestamp=q["timestamp"],
            nonce=q["nonce"],
            encrypt=q["echostr"],
        )
        return PlainTextResponse(echo)

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/wecom/callback", self.post, methods=["POST"]),
                Route("/wecom/callback", self.get, methods=["GET"]),
            ]
        )


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def sender(state: SandboxState, receiver: Receiver) -> AsyncIterator[CallbackSender]:
    transport = httpx.ASGITransport(app=receiver.app())
    async with httpx.AsyncClient(transport=transport, base_url="http://campbot") as client:
        yield CallbackSender(state, client, token=TOKEN, encoding_aes_key=AES_KEY, agent_id=AGENT)


def fields(xml: str) -> dict[str, str]:
    return {child.tag: child.text or "" for child in ElementTree.fromstring(xml)}


async def test_the_receiver_decrypts_what_was_sent(
    sender: CallbackSender, receiver: Receiver
) -> None:
    sent = await sender.text_from_member(
        "zhangsan", "打卡 第3天 ]]> 完成", msg_id="7300000000000000001"
    )
    assert (sent.response.status_code, sent.response.text) == (200, "success")
    assert receiver.plaintexts == [sent.plaintext]
    event = parse_event(receiver.plaintexts[0])
    assert isinstance(event, TextMessage)
    assert event.content == "打卡 第3天 ]]> 完成"
    assert fields(sent.plaintext)["AgentID"] == str(AGENT)


async def test_add_external_contact_issues_a_working_welcome_code(
    sender: CallbackSender, receiver: Receiver, api: SandboxApi, state: SandboxState
) -> None:
    sent = await sender.add_external_contact(
        STUDENT, userid="zhangsan", name="小明", state="camp42"
    )
    received = fields(receiver.plaintexts[0])
    assert (received["ChangeType"], received["UserID"], received["ExternalUserID"]) == (
        "add_external_contact",
        "zhangsan",
        STUDENT,
    )
    assert received["State"] == "camp42"
    assert received["WelcomeCode"] == sent.welcome_code
    # What a bot does next: welcome with the code, and look the customer up.
    welcome = {"welcome_code": received["WelcomeCode"], "text": {"content": "欢迎"}}
    assert (await api.post("externalcontact/send_welcome_msg", welcome))["errcode"] == 0
    contact = await api.get("externalcontact/get", external_userid=STUDENT)
    assert contact["external_contact"]["name"] == "小明"
    assert contact["follow_user"][0]["state"] == "camp42"


async def test_a_slow_bot_misses_the_welcome_window(
    sender: CallbackSender, receiver: Receiver, api: SandboxApi, clock: ManualClock
) -> None:
    await sender.add_external_contact(STUDENT, userid="zhangsan")
    clock.advance(timedelta(seconds=21))
    welcome = {
        "welcome_code": fields(receiver.plaintexts[0])["WelcomeCode"],
        "text": {"content": "hi"},
    }
    assert (await api.post("externalcontact/send_welcome_msg", welcome))["errcode"] == 41050


async def test_del_follow_user_ends_the_relation(
    sender: CallbackSender, receiver: Receiver, api: SandboxApi
) -> None:
    await sender.add_external_contact(STUDENT, userid="zhangsan")
    await sender.del_follow_user(STUDENT, userid="zhangsan")
    assert fields(receiver.plaintexts[1])["ChangeType"] == "del_follow_user"
    assert (await api.get("externalcontact/get", external_userid=STUDENT))["errcode"] == 84061


async def test_chat_member_versions_match_groupchat_get(
    sender: CallbackSender, receiver: Receiver, api: SandboxApi, state: SandboxState
) -> None:
    group = state.add_customer_group("wrCamp42", "zhangsan")
    before = group.member_version
    await sender.chat_members_joined("wrCamp42", [STUDENT, "wmStudentBxxxxxxxxxxxxxxxxxxx"])
    await sender.chat_members_left("wrCamp42", [STUDENT], quit_scene=1)
    joined, left = (parse_event(p) for p in receiver.plaintexts)
    assert isinstance(joined, ExternalChatEvent)
    assert isinstance(left, ExternalChatEvent)
    assert joined.update_detail == "add_member"
    assert left.update_detail == "del_member"
    assert joined.mem_change_list == (STUDENT, "wmStudentBxxxxxxxxxxxxxxxxxxx")
    assert left.mem_change_list == (STUDENT,)
    assert (joined.last_mem_ver, joined.cur_mem_ver) == (before, left.last_mem_ver)
    chat = (await api.post("externalcontact/groupchat/get", {"chat_id": "wrCamp42"}))["group_chat"]
    assert chat["member_version"] == left.cur_mem_ver
    joined_xml, left_xml = (fields(p) for p in receiver.plaintexts)
    assert (joined_xml["JoinScene"], joined_xml["MemChangeCnt"]) == ("3", "2")
    assert left_xml["QuitScene"] == "1"


async def test_redeliver_replays_the_identical_request(
    sender: CallbackSender, receiver: Receiver
) -> None:
    receiver.status = 500
    first = await sender.text_from_member("zhangsan", "hi")
    receiver.status = 200
    retry = await sender.redeliver()
    assert (first.response.status_code, retry.response.status_code) == (500, 200)
    assert receiver.raw[0] == receiver.raw[1]
    assert retry.callback is first.callback


async def test_verify_url_answers_the_echo(sender: CallbackSender) -> None:
    response = await sender.verify_url("1616140317555161061")
    assert (response.status_code, response.text) == (200, "1616140317555161061")


async def test_campbot_accepts_sandbox_callbacks_once(
    harness: AppHarness, clock: ManualClock, sessions: async_sessionmaker[AsyncSession]
) -> None:
    state = SandboxState(corp_id=CAMPBOT_CORP_ID, apps={AGENT: "s"}, clock=clock)
    sender = CallbackSender(
        state, harness.client, token=TOKEN, encoding_aes_key=AES_KEY, agent_id=AGENT
    )
    sent = await sender.add_external_contact(STUDENT, userid="zhangsan", state="camp42")
    retry = await sender.redeliver(sent)
    assert [(r.response.status_code, r.response.text) for r in (sent, retry)] == [
        (200, "success"),
        (200, "success"),
    ]
    # CampBot recorded the retry as the same event.
    assert len(await inbox_rows(sessions)) == 1
