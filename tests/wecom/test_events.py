"""Conformance of `app.wecom.events.parse_event` to real and hand-written callbacks.

Three tables drive most of this module:

* every plaintext callback in ../shared/fixtures/wecom/callbacks (real SDK/issue
  samples, described in its SOURCES.txt) against its `index.json` entry, plus
  explicit values for the quirky ones (skipped, saying so, where ../shared is absent);
* our own samples in tests/fixtures/callbacks against `expected.json` there, so
  every event family the project models is tested even without ../shared;
* the dedupe-key and XML-safety properties, on inline payloads.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET  # only to reshape our own, trusted fixtures
from pathlib import Path
from typing import Any

import pytest

from app.errors import MalformedCallbackError
from app.wecom.events import (
    ChangeContactEvent,
    EnterAgentEvent,
    Event,
    ExternalChatEvent,
    ExternalContactEvent,
    ExternalTagEvent,
    ImageMessage,
    LinkMessage,
    LocationMessage,
    Message,
    TextMessage,
    UnknownEvent,
    VideoMessage,
    VoiceMessage,
    WeComEvent,
    kind_of,
    parse_event,
)
from app.wecom.xml_fields import MAX_DEPTH, MAX_ELEMENTS
from tests.support import CORP_ID, FIXTURES, SHARED, T0, contact_added, text_message

SHARED_CALLBACKS = SHARED / "fixtures" / "wecom" / "callbacks"
OWN_CALLBACKS = FIXTURES / "callbacks"
ENVELOPE_PREFIX = "envelope_encrypted__"  # the encrypted envelope, not a plaintext body
MAX_KEY_LEN = 200  # InboxEvent.dedupe_key is String(200)

needs_shared = pytest.mark.skipif(
    not SHARED_CALLBACKS.is_dir(),
    reason=f"shared fixtures absent: {SHARED_CALLBACKS} does not exist "
    "(../shared is not checked out next to this repository)",
)

MESSAGE_CLASSES: dict[str, type[WeComEvent]] = {
    "text": TextMessage,
    "image": ImageMessage,
    "voice": VoiceMessage,
    "video": VideoMessage,
    "location": LocationMessage,
    "link": LinkMessage,
}
EVENT_CLASSES: dict[str, type[WeComEvent]] = {
    "enter_agent": EnterAgentEvent,
    "change_contact": ChangeContactEvent,
    "change_external_contact": ExternalContactEvent,
    "change_external_chat": ExternalChatEvent,
    "change_external_tag": ExternalTagEvent,
}
CLASSES_BY_NAME: dict[str, type[WeComEvent]] = {
    cls.__name__: cls
    for cls in (*MESSAGE_CLASSES.values(), *EVENT_CLASSES.values(), Event, UnknownEvent)
}


def parse_file(path: Path) -> WeComEvent:
    return parse_event(path.read_bytes())


def assert_fields(event: WeComEvent, fields: dict[str, Any]) -> None:
    for name, expected in fields.items():
        actual = getattr(event, name)
        if isinstance(actual, tuple):
            actual = list(actual)
        assert actual == expected, f"{name}: {actual!r} != {expected!r}"


def assert_key_shape(event: WeComEvent) -> None:
    key = event.dedupe_key
    assert isinstance(key, str)
    assert 0 < len(key) <= MAX_KEY_LEN
    if isinstance(event, Message) and event.msg_id:
        assert key == f"msg:{event.msg_id}"
    else:
        assert key.startswith(f"{event.kind}:{event.create_time}:")


# --------------------------------------------------------------------------------------
# ../shared: every real callback sample matches index.json


def _shared_index() -> dict[str, dict[str, str]]:
    if not SHARED_CALLBACKS.is_dir():
        return {}
    entries = json.loads((SHARED_CALLBACKS / "index.json").read_text(encoding="utf-8"))
    return {entry["file"]: entry for entry in entries}


SHARED_INDEX = _shared_index()
SHARED_FILES = sorted(
    path.name
    for path in SHARED_CALLBACKS.glob("*.xml")  # empty where ../shared is absent
    if not path.name.startswith(ENVELOPE_PREFIX)
)
SHARED_PARAMS = [pytest.param(name, id=name) for name in SHARED_FILES] or [
    pytest.param(None, id="shared-absent")
]


def expected_from_index(entry: dict[str, str]) -> tuple[type[WeComEvent], str]:
    """The class and kind a self-built app's parser owes this payload."""
    msg_type = entry["msg_type"].lower()
    event = entry["event"].lower()
    if entry["info_type"] or not msg_type:
        return UnknownEvent, "unknown"  # third-party suite payload: no MsgType at all
    if msg_type in MESSAGE_CLASSES:
        return MESSAGE_CLASSES[msg_type], msg_type
    if msg_type == "event" and event:
        return EVENT_CLASSES.get(event, Event), f"event.{event}"
    return UnknownEvent, "unknown"


def raw_field(event: WeComEvent, attribute: str, tag: str) -> str:
    """The typed field where the class has one, else the raw XML field."""
    value = getattr(event, attribute, None)
    if value is None:
        raw = event.data.get(tag, "")
        value = raw if isinstance(raw, str) else ""
    return value


# Explicit values for the samples that exercise a known quirk (see SOURCES.txt).
SHARED_EXPECTED: dict[str, tuple[type[WeComEvent], str, dict[str, Any]]] = {
    # MsgId may be a non-numeric string (WxJava #3714); wechatpy crashes on it.
    (
        "msg_text__"
        "wxjava-7b4b281__WxCpXmlMessageTest.testMsgIdStringAndNumericFormats.xmlWithString.xml"
    ): (
        TextMessage,
        "text",
        {
            "msg_id": "CAIQg/PKxgYY2sC9tpuAgAMg9/zKaw==",
            "dedupe_key": "msg:CAIQg/PKxgYY2sC9tpuAgAMg9/zKaw==",
            "content": "this is a test",
            "agent_id": None,
            "create_time": 1348831860,
        },
    ),
    "msg_text__decrypted-tencent_python_sample_ww1436__plaintext.xml": (
        TextMessage,
        "text",
        {
            "to_user": "ww1436e0e65a779aee",
            "from_user": "ChenJiaShun",
            "content": "你好",
            "msg_id": "1456453720",
            "dedupe_key": "msg:1456453720",
            "agent_id": 1000002,
        },
    ),
    "msg_text__decrypted-senparc_qy_text__plaintext.xml": (
        TextMessage,
        "text",
        {"msg_id": "4299263624800632835", "agent_id": 2, "content": "末"},
    ),
    # MsgType text with a stray <Event>: the MsgType decides.
    "subscribe__wxjava__WxCpXmlMessageTest.testFromXml.xml": (
        TextMessage,
        "text",
        {"content": "this is a test", "dedupe_key": "msg:1234567890123456"},
    ),
    "msg_image__wechatpy__test_parse_image_message.1.xml": (
        ImageMessage,
        "image",
        {"pic_url": "this is a url", "media_id": "media_id"},
    ),
    "msg_voice__wechatpy__test_parse_voice_message.1.xml": (
        VoiceMessage,
        "voice",
        {"media_id": "media_id", "format": "Format"},
    ),
    "msg_video__wechatpy__test_parse_video_message.1.xml": (
        VideoMessage,
        "video",
        {"media_id": "media_id", "thumb_media_id": "thumb_media_id"},
    ),
    "msg_location__wechatpy__test_parse_location_message.1.xml": (
        LocationMessage,
        "location",
        {
            "latitude": "23.134521",
            "longitude": "113.358803",
            "scale": "20",
            "label": "位置信息",
        },
    ),
    "msg_link__wechatpy__test_parse_link_message.1.xml": (
        LinkMessage,
        "link",
        {
            "title": "公众平台官网链接",
            "description": "公众平台官网链接",
            "url": "url",
            "pic_url": "picurl",
        },
    ),
    "msg_notsure__wechatpy__test_parse_unknown_message.1.xml": (
        UnknownEvent,
        "unknown",
        {"msg_type": "notsure", "agent_id": 1},
    ),
    # Event names are case-inconsistent: a real capture has `view`, docs have `VIEW`.
    "view__decrypted-fastwego_view_event__plaintext.xml": (
        Event,
        "event.view",
        {
            "event": "view",
            "event_key": "https://roadmapedu.com",
            "agent_id": 1000004,
        },
    ),
    "VIEW__wechatpy__test_parse_view_event.1.xml": (
        Event,
        "event.view",
        {"event": "view", "event_key": "www.qq.com", "agent_id": 1},
    ),
    "CLICK__wechatpy__test_parse_click_event.1.xml": (Event, "event.click", {"event": "click"}),
    "enter_agent__wxjava__WxCpTpXmlMessageTest.enterAppTest.xml": (
        EnterAgentEvent,
        "event.enter_agent",
        {"event_key": "", "agent_id": 1},
    ),
    # ChangeType as bare text (not CDATA); leading space before <xml>.
    "change_contact.update_user__go-workwx__TestRxMessageChangeContactUpdateUser.xml": (
        ChangeContactEvent,
        "event.change_contact",
        {
            "change_type": "update_user",
            "user_id": "zhangsan",
            "new_user_id": "zhangsan001",
            "name": "张三",
            "agent_id": None,
        },
    ),
    "change_contact.create_user__go-workwx__TestRxMessageChangeContactCreateUser.xml": (
        ChangeContactEvent,
        "event.change_contact",
        {
            "change_type": "create_user",
            "user_id": "zhangsan",
            "new_user_id": "",
        },
    ),
    # Third-party suite payloads (InfoType, no MsgType): stored as unknown, never dropped.
    "change_contact.create_user__wxjava__WxCpTpXmlMessageTest.testUserNotifyXML.xml": (
        UnknownEvent,
        "unknown",
        {"msg_type": "", "create_time": None, "agent_id": None},
    ),
    "change_contact.update_tag__wxjava__WxCpTpXmlMessageTest.tagNotifyTest.xml": (
        UnknownEvent,
        "unknown",
        {"msg_type": ""},
    ),
    "register_corp__wxjava__WxCpTpXmlMessageTest.testRegisterCorp.xml": (
        UnknownEvent,
        "unknown",
        {"msg_type": ""},
    ),
    # Closing tag `</xml >`.
    (
        "change_external_contact.add_external_contact__"
        "wxjava__WxCpXmlMessageTest.testAddExternalUserEvent.xml"
    ): (
        ExternalContactEvent,
        "event.change_external_contact",
        {
            "change_type": "add_external_contact",
            "user_id": "zhangsan",
            "external_user_id": "woAJ2GCAAAXtWyujaWJHDDGi0mACH71w",
            "state": "teststate",
            "welcome_code": "WELCOMECODE",
            "agent_id": None,
        },
    ),
    # Non-ASCII WelcomeCode.
    (
        "change_external_contact.add_external_contact__"
        "marketgo__ContactWayEventCallbackTest.testVerifyAddExtUser.xml"
    ): (
        ExternalContactEvent,
        "event.change_external_contact",
        {
            "change_type": "add_external_contact",
            "user_id": "wangwanzheng",
            "external_user_id": "wmqPhANwAA60WqyO-IvxYD1Qc9r_Q3Hg",
            "state": "dJGVKpucQVATT3YW9EOyC2Z6",
            "welcome_code": "123测试",
            "source": "",
        },
    ),
    (
        "change_external_contact.add_half_external_contact__"
        "marketgo__ContactWayEventCallbackTest.testNoVerifyAddExtUser.xml"
    ): (
        ExternalContactEvent,
        "event.change_external_contact",
        {
            "change_type": "add_half_external_contact",
            "welcome_code": "123测试",
        },
    ),
    (
        "change_external_contact.del_external_contact__"
        "marketgo__ContactWayEventCallbackTest.delExternalContact.xml"
    ): (
        ExternalContactEvent,
        "event.change_external_contact",
        {
            "change_type": "del_external_contact",
            "user_id": "wangwanzheng",
            "external_user_id": "wmqPhANwAA60WqyO-IvxYD1Qc9r_Q3Hg",
            "source": "DELETE_BY_TRANSFER",
            "welcome_code": "",
        },
    ),
    (
        "change_external_contact.del_follow_user__"
        "marketgo__ContactWayEventCallbackTest.delFollowUser.xml"
    ): (
        ExternalContactEvent,
        "event.change_external_contact",
        {
            "change_type": "del_follow_user",
            "user_id": "wangwanzheng",
            "source": "",
        },
    ),
    (
        "change_external_contact.msg_audit_approved__"
        "wxjava__WxCpMsgAuditTest.test.msgAuditApprovedXml.xml"
    ): (
        ExternalContactEvent,
        "event.change_external_contact",
        {
            "change_type": "msg_audit_approved",
            "user_id": "zhangsan",
            "external_user_id": "woAJ2GCAAABiuyujaWJHDDGi0mACHAAA",
            "welcome_code": "WELCOMECODE",
        },
    ),
    # MemChangeList, old comma-separated CDATA shape.
    (
        "change_external_chat.update.add_member__"
        "wxjava-7b4b281__WxCpXmlMessageTest.testExternalChatChangeEvent.xmlAddMember.xml"
    ): (
        ExternalChatEvent,
        "event.change_external_chat",
        {
            "change_type": "update",
            "chat_id": "wrOgQhDgAAMYQiS5ol9G7gK9JVAAAA",
            "update_detail": "add_member",
            "join_scene": 1,
            "quit_scene": None,
            "mem_change_cnt": 2,
            "mem_change_list": ["wmEJiCwAAA9KG2qlSq6rKwASSgAAAA", "wmEJiCwAAA9KG2qlSq6rKwBBBBBBB"],
            "last_mem_ver": "",
            "cur_mem_ver": "",
        },
    ),
    (
        "change_external_chat.update.del_member__"
        "wxjava-7b4b281__WxCpXmlMessageTest.testExternalChatChangeEvent.xmlDelMember.xml"
    ): (
        ExternalChatEvent,
        "event.change_external_chat",
        {
            "update_detail": "del_member",
            "join_scene": None,
            "quit_scene": 1,
            "mem_change_cnt": 1,
            "mem_change_list": ["wmEJiCwAAA9KG2qlSq6rKwASSgAAAA"],
        },
    ),
    # MemChangeList, <Item> shape (WeCom 4.8.0+), with member versions.
    (
        "change_external_chat.update.add_member__"
        "wxjava-7b4b281__WxCpXmlMessageTest.testExternalChatChangeEvent.xmlNewFormatAddMember.xml"
    ): (
        ExternalChatEvent,
        "event.change_external_chat",
        {
            "chat_id": "wrxUBwDQAAa44T11Ziaed811rhUr8-3Igmug",
            "update_detail": "add_member",
            "join_scene": 3,
            "mem_change_cnt": 1,
            "mem_change_list": ["wmxUBwDQAAO-Hn5_wFJz4wvo5TxLFibw"],
            "last_mem_ver": "5807afd2ab75771d5e8ac623f534ac0b",
            "cur_mem_ver": "ea36e8b6062b803cda0ee45e9418d637",
            "create_time": 9811170016713,
            "created_at": None,  # out of datetime's range
        },
    ),
    (
        "change_external_chat.update.del_member__"
        "wxjava-7b4b281__WxCpXmlMessageTest.testExternalChatChangeEvent.xmlNewFormatMultiMember.xml"
    ): (
        ExternalChatEvent,
        "event.change_external_chat",
        {
            "update_detail": "del_member",
            "quit_scene": 1,
            "mem_change_cnt": 2,
            "mem_change_list": ["wmEJiCwAAA9KG2qlSq6rKwASSgAAAA", "wmEJiCwAAA9KG2qlSq6rKwBBBBBBB"],
        },
    ),
    # No MemChangeList at all.
    (
        "change_external_chat.update.change_name__"
        "wxjava-7b4b281__WxCpXmlMessageTest.testExternalChatChangeEvent.xmlNoMemChangeList.xml"
    ): (
        ExternalChatEvent,
        "event.change_external_chat",
        {
            "update_detail": "change_name",
            "join_scene": None,
            "quit_scene": None,
            "mem_change_cnt": None,
            "mem_change_list": [],
            "last_mem_ver": "",
            "cur_mem_ver": "",
        },
    ),
    (
        "change_external_chat.update.change_name__"
        "senparc__RequestMessageEvent_Change_External_Chat_Update.xml"
    ): (
        ExternalChatEvent,
        "event.change_external_chat",
        {
            "chat_id": "wree9uDgAAfxkLu5-lEbsmQBjsb7V8Cg",
            "update_detail": "change_name",
            "join_scene": 0,
            "mem_change_cnt": 2,
            "mem_change_list": [],
            "last_mem_ver": "6ebe7c3f89cb839ec2e1720f04eae2e0",
            "cur_mem_ver": "15722766561cf8bce92480a3d1457654",
        },
    ),
    "change_external_chat__fastwego__EventChangeExternalContactChangeExternalChat.xml": (
        ExternalChatEvent,
        "event.change_external_chat",
        {
            "chat_id": "CHAT_ID",
            "change_type": "",
            "update_detail": "",
            "mem_change_list": [],
        },
    ),
    # Tag Id is a string id (WxJava #2095).
    "change_external_tag.delete__wxjava-issue2095__decrypted_real.xml": (
        ExternalTagEvent,
        "event.change_external_tag",
        {
            "change_type": "delete",
            "tag_id": "etF1bDDAAA6yLInsyCaC3Dbs_M5vR28g",
            "tag_type": "tag_group",
            "strategy_id": "",
            "from_user": "abc",
            "agent_id": None,
        },
    ),
}


@needs_shared
def test_shared_index_covers_every_sample() -> None:
    on_disk = {path.name for path in SHARED_CALLBACKS.glob("*.xml")}
    assert on_disk == set(SHARED_INDEX)
    assert len(SHARED_FILES) == len(on_disk) - 1  # all but the encrypted envelope


@needs_shared
def test_shared_explicit_expectations_name_real_files() -> None:
    assert set(SHARED_EXPECTED) <= set(SHARED_FILES)


@needs_shared
@pytest.mark.parametrize("name", SHARED_PARAMS)
def test_shared_sample_conforms_to_index(name: str) -> None:
    entry = SHARED_INDEX[name]
    event = parse_file(SHARED_CALLBACKS / name)
    cls, kind = expected_from_index(entry)

    assert type(event) is cls
    assert event.kind == kind
    assert event.msg_type == entry["msg_type"].lower()
    assert raw_field(event, "event", "Event").lower() == entry["event"].lower()
    assert raw_field(event, "change_type", "ChangeType") == entry["change_type"]
    assert raw_field(event, "update_detail", "UpdateDetail") == entry["update_detail"]
    assert event.data.get("InfoType", "") == entry["info_type"]
    if isinstance(event, ExternalContactEvent):
        assert event.change_type in ExternalContactEvent.CHANGE_TYPES
    assert_key_shape(event)
    assert parse_file(SHARED_CALLBACKS / name).dedupe_key == event.dedupe_key

    if name in SHARED_EXPECTED:
        explicit_cls, explicit_kind, fields = SHARED_EXPECTED[name]
        assert (type(event), event.kind) == (explicit_cls, explicit_kind)
        assert_fields(event, fields)


@needs_shared
def test_shared_samples_differing_only_in_whitespace_share_a_key() -> None:
    # fastwego's and go-workwx's edit_external_contact are one payload, formatted differently.
    family = "change_external_contact.edit_external_contact__"
    pretty = family + "fastwego__EventChangeExternalContactEditExternalContact.xml"
    compact = family + "go-workwx__TestRxMessageEventEditExternalContact.xml"
    assert (SHARED_CALLBACKS / pretty).read_bytes() != (SHARED_CALLBACKS / compact).read_bytes()
    assert (
        parse_file(SHARED_CALLBACKS / pretty).dedupe_key
        == parse_file(SHARED_CALLBACKS / compact).dedupe_key
    )


# --------------------------------------------------------------------------------------
# tests/fixtures/callbacks: our own samples, one per modelled family, against expected.json

OWN_EXPECTED: dict[str, dict[str, Any]] = json.loads(
    (OWN_CALLBACKS / "expected.json").read_text(encoding="utf-8")
)
OWN_FILES = sorted(OWN_EXPECTED)


def test_own_expected_json_covers_every_sample() -> None:
    assert {path.name for path in OWN_CALLBACKS.glob("*.xml")} == set(OWN_EXPECTED)


def test_own_samples_cover_every_modelled_family() -> None:
    kinds = {(spec["class"], spec["kind"]) for spec in OWN_EXPECTED.values()}
    for msg_type, cls in MESSAGE_CLASSES.items():
        assert (cls.__name__, msg_type) in kinds
    for name, cls in EVENT_CLASSES.items():
        assert (cls.__name__, f"event.{name}") in kinds
    assert ("UnknownEvent", "unknown") in kinds

    def change_types(cls: type[WeComEvent]) -> set[str]:
        return {
            spec["fields"]["change_type"]
            for spec in OWN_EXPECTED.values()
            if spec["class"] == cls.__name__
        }

    assert change_types(ExternalContactEvent) == set(ExternalContactEvent.CHANGE_TYPES)
    assert change_types(ExternalChatEvent) == {"create", "update", "dismiss"}
    assert change_types(ExternalTagEvent) == {"create", "update", "delete", "shuffle"}
    assert change_types(ChangeContactEvent) >= {"create_user", "update_user"}


@pytest.mark.parametrize("name", OWN_FILES)
def test_own_sample_parses_as_expected(name: str) -> None:
    spec = OWN_EXPECTED[name]
    event = parse_file(OWN_CALLBACKS / name)

    assert type(event) is CLASSES_BY_NAME[spec["class"]]
    assert event.kind == spec["kind"]
    assert_fields(event, spec["fields"])
    assert_key_shape(event)


@pytest.mark.parametrize("name", OWN_FILES)
def test_a_sample_has_the_kind_its_class_registers_for(name: str) -> None:
    # `Router.on(EventClass)` registers for `kind_of(EventClass)`: a wrong entry would
    # silently route that class's events to no handler.
    event = parse_file(OWN_CALLBACKS / name)
    if type(event) is Event:  # an event no class models: registered for by its kind
        with pytest.raises(ValueError, match="several kinds"):
            kind_of(Event)
    else:
        assert kind_of(type(event)) == event.kind


@pytest.mark.parametrize("name", OWN_FILES)
def test_str_and_bytes_parse_alike(name: str) -> None:
    raw = (OWN_CALLBACKS / name).read_bytes()
    from_bytes, from_str = parse_event(raw), parse_event(raw.decode("utf-8"))
    assert from_bytes == from_str
    assert from_bytes.dedupe_key == from_str.dedupe_key


# --------------------------------------------------------------------------------------
# Quirks, inline so each one is pinned even without any fixture file


def _text_with_agent(agent_xml: str) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        "<FromUserName><![CDATA[zhangsan]]></FromUserName><CreateTime>1772355600</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[hi]]></Content>"
        f"<MsgId>42</MsgId>{agent_xml}</xml>"
    )


@pytest.mark.parametrize(
    ("agent_xml", "agent_id"),
    [
        ("<AgentID>1000002</AgentID>", 1000002),
        ("<AgentID> 1000002 </AgentID>", 1000002),
        ("<AgentID><![CDATA[1000002]]></AgentID>", 1000002),
        ("<AgentID><![CDATA[]]></AgentID>", None),
        ("<AgentID></AgentID>", None),
        ("<AgentID/>", None),
        ("", None),
        ("<AgentID><![CDATA[toAgentID]]></AgentID>", None),
    ],
    ids=[
        "number",
        "padded",
        "cdata",
        "empty-cdata",
        "empty",
        "self-closing",
        "missing",
        "non-numeric",
    ],
)
def test_agent_id(agent_xml: str, agent_id: int | None) -> None:
    event = parse_event(_text_with_agent(agent_xml))
    assert isinstance(event, TextMessage)
    assert event.agent_id == agent_id
    assert event.dedupe_key == "msg:42"


@pytest.mark.parametrize("name", ["view", "VIEW", "View"])
def test_event_name_is_case_insensitive(name: str) -> None:
    event = parse_event(
        "<xml><ToUserName>ww1</ToUserName><FromUserName>lisi</FromUserName>"
        "<CreateTime>1772355600</CreateTime><MsgType>event</MsgType>"
        f"<Event><![CDATA[{name}]]></Event><EventKey>https://camp.example.org</EventKey></xml>"
    )
    assert type(event) is Event
    assert event.kind == "event.view"
    assert event.event == "view"
    assert event.event_key == "https://camp.example.org"


def test_closing_tag_with_space() -> None:
    event = parse_event(text_message("777").replace("</xml>", "</xml >"))
    assert isinstance(event, TextMessage)
    assert event.dedupe_key == "msg:777"


def test_suite_payload_is_unknown() -> None:
    event = parse_event(
        "<xml><SuiteId>wwsuite</SuiteId><InfoType>suite_ticket</InfoType>"
        "<TimeStamp>1772355600</TimeStamp><SuiteTicket>ticket</SuiteTicket></xml>"
    )
    assert type(event) is UnknownEvent
    assert event.kind == "unknown"
    assert event.data["InfoType"] == "suite_ticket"
    assert_key_shape(event)


@pytest.mark.parametrize(
    ("listing", "ids"),
    [
        ("<Item><![CDATA[wmA]]></Item><Item><![CDATA[wmB]]></Item>", ("wmA", "wmB")),
        ("<Item>wmA</Item>", ("wmA",)),
        ("\n  <item>wmA</item>\n  <item>wmB</item>\n", ("wmA", "wmB")),
        ("<![CDATA[wmA,wmB]]>", ("wmA", "wmB")),
        ("<![CDATA[wmA, wmB ,]]>", ("wmA", "wmB")),
        ("wmA", ("wmA",)),
        ("", ()),
    ],
    ids=["items", "one-item", "lowercase-items", "comma", "comma-padded", "bare", "empty"],
)
def test_mem_change_list_shapes(listing: str, ids: tuple[str, ...]) -> None:
    event = parse_event(
        "<xml><MsgType>event</MsgType><Event>change_external_chat</Event>"
        "<ChatId>wrChat</ChatId><ChangeType>update</ChangeType>"
        f"<UpdateDetail>add_member</UpdateDetail><MemChangeList>{listing}</MemChangeList></xml>"
    )
    assert isinstance(event, ExternalChatEvent)
    assert event.mem_change_list == ids


# --------------------------------------------------------------------------------------
# Dedupe keys


def _reshaped(xml_text: str, *, indent: bool) -> str:
    """The same document with its top-level fields reversed and re-indented (no CDATA)."""
    root = ET.fromstring(xml_text)
    children = list(root)
    for child in children:
        root.remove(child)
    root.extend(reversed(children))
    if indent:
        ET.indent(root, space="\t")
    else:
        for element in root.iter():
            element.tail = None
            if len(element):
                element.text = None
    return ET.tostring(root, encoding="unicode")


@pytest.mark.parametrize("name", OWN_FILES)
def test_key_is_stable_across_parses(name: str) -> None:
    raw = (OWN_CALLBACKS / name).read_bytes()
    assert parse_event(raw).dedupe_key == parse_event(raw).dedupe_key


@pytest.mark.parametrize("name", OWN_FILES)
@pytest.mark.parametrize("indent", [True, False], ids=["indented", "compact"])
def test_key_ignores_field_order_and_layout(name: str, indent: bool) -> None:
    original = (OWN_CALLBACKS / name).read_text(encoding="utf-8")
    reshaped = _reshaped(original, indent=indent)
    assert reshaped != original
    assert parse_event(reshaped).dedupe_key == parse_event(original).dedupe_key


def test_key_ignores_whitespace_and_cdata_in_values() -> None:
    original = contact_added("wmStudent0001")
    loose = re.sub(r"<!\[CDATA\[(.*?)\]\]>", r"  \1\n ", original)  # CDATA → padded plain text
    loose = loose.replace("><", ">\n   <").replace("<CreateTime>", "<CreateTime> ")
    assert loose != original
    assert parse_event(loose).dedupe_key == parse_event(original).dedupe_key


def test_same_staff_same_second_different_customers_get_different_keys() -> None:
    first = parse_event(contact_added("wmStudent0001", staff="zhangsan", at=T0))
    second = parse_event(contact_added("wmStudent0002", staff="zhangsan", at=T0))
    assert isinstance(first, ExternalContactEvent)
    assert isinstance(second, ExternalContactEvent)
    assert (first.from_user, first.create_time) == (second.from_user, second.create_time)
    assert first.dedupe_key != second.dedupe_key


@pytest.mark.parametrize(
    "changed",
    [
        {"staff": "lisi"},
        {"state": "camp43"},
        {"change_type": "add_half_external_contact"},
        {"at": T0.replace(second=1)},
    ],
    ids=["staff", "state", "change-type", "second"],
)
def test_any_field_change_changes_the_key(changed: dict[str, Any]) -> None:
    base = parse_event(contact_added("wmStudent0001"))
    other = parse_event(contact_added("wmStudent0001", **changed))
    assert base.dedupe_key != other.dedupe_key


def test_message_key_is_its_msg_id() -> None:
    event = parse_event(text_message("4561255354251345929"))
    assert event.dedupe_key == "msg:4561255354251345929"
    # A retry of the same message (same MsgId) is the same key whatever else differs.
    assert parse_event(text_message("4561255354251345929", content="x")).dedupe_key == (
        event.dedupe_key
    )
    assert parse_event(text_message("4561255354251345930")).dedupe_key != event.dedupe_key


def test_message_without_msg_id_falls_back_to_a_payload_key() -> None:
    xml = text_message("").replace("<MsgId></MsgId>", "")
    event = parse_event(xml)
    assert isinstance(event, TextMessage)
    assert event.msg_id == ""
    assert_key_shape(event)
    assert parse_event(xml).dedupe_key == event.dedupe_key
    assert parse_event(xml.replace("你好", "再见")).dedupe_key != event.dedupe_key


@pytest.mark.parametrize("length", [121, 500, 10_000])
def test_long_msg_id_is_hashed_to_a_bounded_key(length: int) -> None:
    msg_id = "CAIQ" + "x" * (length - 4)
    key = parse_event(text_message(msg_id)).dedupe_key
    assert key.startswith("msg:")
    assert len(key) <= MAX_KEY_LEN
    assert parse_event(text_message(msg_id)).dedupe_key == key
    # Two long ids sharing a long prefix must not collide.
    assert parse_event(text_message(msg_id[:-1] + "y")).dedupe_key != key


def test_msg_id_at_the_limit_is_kept_verbatim() -> None:
    msg_id = "9" * 120
    assert parse_event(text_message(msg_id)).dedupe_key == f"msg:{msg_id}"


def test_long_event_name_gives_a_bounded_key() -> None:
    event = parse_event(
        "<xml><MsgType>event</MsgType><CreateTime>1772355600</CreateTime>"
        f"<Event>{'x' * 1000}</Event></xml>"
    )
    assert len(event.dedupe_key) <= MAX_KEY_LEN


def test_long_create_time_gives_a_bounded_key() -> None:
    """A CreateTime too long to be a time is not a number; the key stays bounded."""
    event = parse_event(
        "<xml><MsgType>event</MsgType><Event>enter_agent</Event>"
        f"<CreateTime>{'9' * 300}</CreateTime></xml>"
    )
    assert len(event.dedupe_key) <= MAX_KEY_LEN


# --------------------------------------------------------------------------------------
# Safety: no DTDs, no entities, nothing that is not XML

BODY = "<xml><MsgType>text</MsgType><Content>&lol9;</Content><MsgId>1</MsgId></xml>"
BILLION_LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE xml [\n <!ENTITY lol "lol">\n'
    + "".join(
        f' <!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    + "]>\n"
    + BODY
)


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(
            "<!DOCTYPE xml><xml><MsgType>text</MsgType><MsgId>1</MsgId></xml>", id="bare-doctype"
        ),
        pytest.param(
            "<!DOCTYPE xml [<!ELEMENT xml ANY>]><xml><MsgType>text</MsgType></xml>",
            id="internal-dtd",
        ),
        pytest.param(
            '<!DOCTYPE xml SYSTEM "http://evil.example/x.dtd"><xml><MsgType>text</MsgType></xml>',
            id="external-dtd",
        ),
        pytest.param(BILLION_LAUGHS, id="billion-laughs"),
        pytest.param(BILLION_LAUGHS.encode(), id="billion-laughs-bytes"),
        pytest.param(
            '<!DOCTYPE xml [<!ENTITY name "campbot">]><xml><MsgType>text</MsgType>'
            "<Content>&name;</Content></xml>",
            id="one-internal-entity",
        ),
        pytest.param(
            '<!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml>'
            "<MsgType>text</MsgType><Content>&xxe;</Content></xml>",
            id="external-entity",
        ),
        pytest.param(
            '<!DOCTYPE xml [<!ENTITY % p SYSTEM "http://evil.example/p.dtd"> %p;]>'
            "<xml><MsgType>text</MsgType></xml>",
            id="parameter-entity",
        ),
        pytest.param(
            '<!DOCTYPE xml [<!ENTITY u SYSTEM "http://evil.example/a" NDATA gif>]>'
            "<xml><MsgType>text</MsgType></xml>",
            id="unparsed-entity",
        ),
    ],
)
def test_dtds_and_entities_are_refused(payload: str | bytes) -> None:
    with pytest.raises(MalformedCallbackError) as caught:
        parse_event(payload)
    assert caught.value.status_code == 400


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param("", id="empty"),
        pytest.param(b"", id="empty-bytes"),
        pytest.param("   \n", id="whitespace"),
        pytest.param("hello", id="plain-text"),
        pytest.param('{"MsgType": "text"}', id="json"),
        pytest.param("<xml><MsgType>text</MsgType>", id="truncated"),
        pytest.param("<xml><MsgType>text</msgtype></xml>", id="mismatched-tag"),
        pytest.param("<xml><Content>&nbsp;</Content></xml>", id="undefined-entity"),
        pytest.param("<xml><a>1</a></xml><xml><a>2</a></xml>", id="two-roots"),
        pytest.param(b"\xff\xfe\x00<\x00x", id="binary"),
        pytest.param("<xml/>", id="no-fields"),
        pytest.param("<xml>just text</xml>", id="text-only-root"),
    ],
)
def test_non_xml_is_refused(payload: str | bytes) -> None:
    with pytest.raises(MalformedCallbackError):
        parse_event(payload)


def test_deeply_nested_xml_is_refused_not_crashing() -> None:
    depth = 5000
    payload = "<xml><MsgType>text</MsgType>" + "<a>" * depth + "</a>" * depth + "</xml>"
    with pytest.raises(MalformedCallbackError):
        parse_event(payload)


def test_absurd_element_count_is_refused() -> None:
    """Finding 1 of issue 10: 60,000 repeated children took seconds to collect."""
    payload = "<xml><MsgType>text</MsgType>" + "<a>1</a>" * 60_000 + "</xml>"
    with pytest.raises(MalformedCallbackError, match=f"more than {MAX_ELEMENTS} elements"):
        parse_event(payload)


def test_element_limit_is_exact() -> None:
    fields = "".join(f"<F{i}>{i}</F{i}>" for i in range(MAX_ELEMENTS - 1))  # + the root
    assert len(parse_event(f"<xml>{fields}</xml>").data) == MAX_ELEMENTS - 1
    with pytest.raises(MalformedCallbackError):
        parse_event(f"<xml>{fields}<Extra/></xml>")


def test_a_whole_group_joining_at_once_parses_in_order() -> None:
    """The largest list WeCom sends: a member change naming every member of a big group."""
    ids = [f"wm{i:05d}" for i in range(2000)]
    items = "".join(f"<Item><![CDATA[{i}]]></Item>" for i in ids)
    event = parse_event(
        "<xml><MsgType>event</MsgType><Event>change_external_chat</Event>"
        "<ChatId>wrChat</ChatId><ChangeType>update</ChangeType><UpdateDetail>add_member"
        f"</UpdateDetail><MemChangeList>{items}</MemChangeList></xml>"
    )
    assert isinstance(event, ExternalChatEvent)
    assert event.mem_change_list == tuple(ids)


def test_nesting_limit_is_exact() -> None:
    def nested(depth: int) -> str:
        return "<xml><MsgType>text</MsgType>" + "<a>" * depth + "x" + "</a>" * depth + "</xml>"

    assert parse_event(nested(MAX_DEPTH)).data["a"]  # a leaf MAX_DEPTH below the root
    with pytest.raises(MalformedCallbackError, match="nested too deeply"):
        parse_event(nested(MAX_DEPTH + 1))


@pytest.mark.parametrize("create_time", ["1_700_000_000", "１７００００００００", " 17e8 "])
def test_create_time_accepts_plain_ascii_digits_only(create_time: str) -> None:
    event = parse_event(
        "<xml><MsgType>event</MsgType><Event>enter_agent</Event>"
        f"<CreateTime>{create_time}</CreateTime></xml>"
    )
    assert event.create_time is None
