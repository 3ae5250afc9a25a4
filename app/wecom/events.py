"""Decrypted callback XML → typed events, each with its dedupe key.

Parsing is lenient where real payloads are messy (non-numeric MsgId, empty or
missing AgentID, `view` vs `VIEW`, both MemChangeList shapes, `</xml >`) and
strict where it matters for safety: no DTDs, no entities, a bounded number of
elements and depth (`app.wecom.xml_fields`). A payload we do not
model still parses, as an `UnknownEvent`, so it is stored and never dropped.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import Any, ClassVar

from app.wecom.xml_fields import XmlData, parse_xml

MESSAGE_TYPES = ("text", "image", "voice", "video", "location", "link")
# Routing fields: the same for every event one app receives, so they identify nothing.
_NOT_IDENTITY = frozenset({"ToUserName", "AgentID"})
_MAX_KEY_PART = 120
_MAX_NAME = 60  # Event names are short; `kind` is stored in 80 characters
_INT = re.compile(r"-?[0-9]{1,19}")


def _int_or_none(value: Any) -> int | None:
    text = value.strip() if isinstance(value, str) else ""
    return int(text) if _INT.fullmatch(text) else None


def _text(data: XmlData, name: str) -> str:
    value = data.get(name, "")
    return value if isinstance(value, str) else ""


def _id_list(value: Any) -> tuple[str, ...]:
    """MemChangeList: `<Item>a</Item><Item>b</Item>` (WeCom 4.8+) or "a,b" (older)."""
    if isinstance(value, dict):
        value = value.get("Item", value.get("item", []))
    items = value if isinstance(value, list) else [value]
    ids: list[str] = []
    for item in items:
        if isinstance(item, str):
            ids.extend(part.strip() for part in item.split(","))
    return tuple(i for i in ids if i)


@dataclass(frozen=True, slots=True, kw_only=True)
class WeComEvent:
    """Fields every callback has; `kind` is what the dispatcher routes on."""

    kind: str
    msg_type: str
    to_user: str
    from_user: str
    create_time: int | None
    agent_id: int | None
    data: XmlData = field(repr=False)

    @property
    def created_at(self) -> datetime | None:
        if self.create_time is None:
            return None
        try:
            return datetime.fromtimestamp(self.create_time, UTC)
        except (OverflowError, OSError, ValueError):
            return None

    @property
    def dedupe_key(self) -> str:
        """Same for WeCom's retries of one callback, different for any two real events."""
        return self._payload_key()

    def _payload_key(self) -> str:
        # Events have no MsgId, and FromUserName+CreateTime (WeCom's advice) collides for
        # customer events, whose sender is always "sys": two students adding one staff
        # member in the same second would be one event. So the key covers every field.
        identity = {k: v for k, v in self.data.items() if k not in _NOT_IDENTITY}
        canonical = json.dumps(identity, sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(canonical.encode()).hexdigest()[:32]
        return f"{self.kind[:_MAX_KEY_PART]}:{self.create_time}:{digest}"


@dataclass(frozen=True, slots=True, kw_only=True)
class Message(WeComEvent):
    """A message a member sent to the app in 1:1 chat."""

    msg_id: str

    @property
    def dedupe_key(self) -> str:
        if not self.msg_id:
            return self._payload_key()
        if len(self.msg_id) > _MAX_KEY_PART:
            return "msg:" + hashlib.sha256(self.msg_id.encode()).hexdigest()
        return f"msg:{self.msg_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class TextMessage(Message):
    content: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageMessage(Message):
    pic_url: str
    media_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceMessage(Message):
    media_id: str
    format: str


@dataclass(frozen=True, slots=True, kw_only=True)
class VideoMessage(Message):
    media_id: str
    thumb_media_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LocationMessage(Message):
    latitude: str
    longitude: str
    scale: str
    label: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkMessage(Message):
    title: str
    description: str
    url: str
    pic_url: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Event(WeComEvent):
    """An app event (`MsgType=event`); `event` is the lower-cased Event name."""

    event: str
    event_key: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EnterAgentEvent(Event):
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class ChangeContactEvent(Event):
    change_type: str
    user_id: str
    new_user_id: str
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalContactEvent(Event):
    CHANGE_TYPES: ClassVar[tuple[str, ...]] = (
        "add_external_contact",
        "edit_external_contact",
        "add_half_external_contact",
        "del_external_contact",
        "del_follow_user",
        "transfer_fail",
        "msg_audit_approved",
    )

    change_type: str
    user_id: str
    external_user_id: str
    state: str
    welcome_code: str
    source: str
    fail_reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalChatEvent(Event):
    change_type: str  # create | update | dismiss
    chat_id: str
    update_detail: str  # add_member | del_member | change_owner | change_name | change_notice
    join_scene: int | None
    quit_scene: int | None
    mem_change_cnt: int | None
    mem_change_list: tuple[str, ...]
    last_mem_ver: str
    cur_mem_ver: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExternalTagEvent(Event):
    change_type: str  # create | update | delete | shuffle
    tag_id: str
    tag_type: str
    strategy_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(WeComEvent):
    """Anything we do not model (other MsgTypes, third-party suite payloads)."""


# The kind each modelled class is parsed from (what `Router.on(EventClass)` registers for).
KINDS: dict[type[WeComEvent], str] = {
    TextMessage: "text",
    ImageMessage: "image",
    VoiceMessage: "voice",
    VideoMessage: "video",
    LocationMessage: "location",
    LinkMessage: "link",
    EnterAgentEvent: "event.enter_agent",
    ChangeContactEvent: "event.change_contact",
    ExternalContactEvent: "event.change_external_contact",
    ExternalChatEvent: "event.change_external_chat",
    ExternalTagEvent: "event.change_external_tag",
    UnknownEvent: "unknown",
}


def kind_of(event_class: type[WeComEvent]) -> str:
    """The one kind `event_class` is parsed from; a class that stands for several kinds
    (`Message`, `Event`) has none: register for the kind itself."""
    try:
        return KINDS[event_class]
    except KeyError:
        raise ValueError(f"{event_class.__name__} is parsed from several kinds") from None


def _common(data: XmlData, kind: str) -> dict[str, Any]:
    return {
        "kind": kind,
        "msg_type": _text(data, "MsgType").lower(),
        "to_user": _text(data, "ToUserName"),
        "from_user": _text(data, "FromUserName"),
        "create_time": _int_or_none(data.get("CreateTime")),
        "agent_id": _int_or_none(data.get("AgentID")),
        "data": data,
    }


def _message(data: XmlData, msg_type: str) -> Message:
    base = {**_common(data, msg_type), "msg_id": _text(data, "MsgId")}
    t = partial(_text, data)
    match msg_type:
        case "text":
            return TextMessage(**base, content=t("Content"))
        case "image":
            return ImageMessage(**base, pic_url=t("PicUrl"), media_id=t("MediaId"))
        case "voice":
            return VoiceMessage(**base, media_id=t("MediaId"), format=t("Format"))
        case "video":
            return VideoMessage(**base, media_id=t("MediaId"), thumb_media_id=t("ThumbMediaId"))
        case "location":
            return LocationMessage(
                **base,
                latitude=t("Location_X"),
                longitude=t("Location_Y"),
                scale=t("Scale"),
                label=t("Label"),
            )
        case _:
            return LinkMessage(
                **base,
                title=t("Title"),
                description=t("Description"),
                url=t("Url"),
                pic_url=t("PicUrl"),
            )


def _event(data: XmlData, name: str) -> Event:
    base = {**_common(data, f"event.{name}"), "event": name, "event_key": _text(data, "EventKey")}
    t = partial(_text, data)
    match name:
        case "enter_agent":
            return EnterAgentEvent(**base)
        case "change_contact":
            return ChangeContactEvent(
                **base,
                change_type=t("ChangeType"),
                user_id=t("UserID"),
                new_user_id=t("NewUserID"),
                name=t("Name"),
            )
        case "change_external_contact":
            return ExternalContactEvent(
                **base,
                change_type=t("ChangeType"),
                user_id=t("UserID"),
                external_user_id=t("ExternalUserID"),
                state=t("State"),
                welcome_code=t("WelcomeCode"),
                source=t("Source"),
                fail_reason=t("FailReason"),
            )
        case "change_external_chat":
            return ExternalChatEvent(
                **base,
                change_type=t("ChangeType"),
                chat_id=t("ChatId"),
                update_detail=t("UpdateDetail"),
                join_scene=_int_or_none(data.get("JoinScene")),
                quit_scene=_int_or_none(data.get("QuitScene")),
                mem_change_cnt=_int_or_none(data.get("MemChangeCnt")),
                mem_change_list=_id_list(data.get("MemChangeList", "")),
                last_mem_ver=t("LastMemVer"),
                cur_mem_ver=t("CurMemVer"),
            )
        case "change_external_tag":
            return ExternalTagEvent(
                **base,
                change_type=t("ChangeType"),
                tag_id=t("Id"),
                tag_type=t("TagType"),
                strategy_id=t("StrategyId"),
            )
        case _:
            return Event(**base)


def parse_event(plaintext: str | bytes) -> WeComEvent:
    """The typed event for a decrypted callback body."""
    data = parse_xml(plaintext)
    msg_type = _text(data, "MsgType").lower()
    if msg_type in MESSAGE_TYPES:
        return _message(data, msg_type)
    name = _text(data, "Event").lower()[:_MAX_NAME]
    if msg_type == "event" and name:
        return _event(data, name)
    return UnknownEvent(**_common(data, "unknown"))
