"""What the sandbox remembers: calls, deliveries, and the corp's directory entries."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Json = dict[str, Any]
CallOutcome = Literal["answered", "injected", "dropped", "server_error", "unknown_path"]
# chat_tool: what a member posted from the chat toolbar (sendChatMessage in their client).
Channel = Literal["message", "appchat", "webhook", "welcome", "msg_template", "chat_tool"]
DeliveryStatus = Literal["delivered", "duplicate", "dropped"]


@dataclass(frozen=True, slots=True)
class UploadedFile:
    field: str
    filename: str
    content_type: str
    size: int
    md5: str


@dataclass(slots=True)
class RecordedCall:
    """One HTTP request as the sandbox saw it, and what it answered."""

    method: str
    path: str
    query: dict[str, str]
    json: Any
    files: list[UploadedFile] | None
    at: datetime
    status: int = 200
    response: Json | None = None
    outcome: CallOutcome = "answered"

    @property
    def errcode(self) -> int | None:
        """0 on success (also when WeCom leaves errcode out); None when no JSON came back."""
        if self.response is None:
            return None
        return int(self.response.get("errcode", 0))


@dataclass(frozen=True, slots=True)
class Delivery:
    """A message WeCom accepted, and what became of it."""

    channel: Channel
    target: str
    body: Json
    at: datetime
    status: DeliveryStatus = "delivered"
    recipients: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    mentioned: tuple[str, ...] = ()
    sender: str | None = None
    msgid: str | None = None


@dataclass(slots=True)
class IssuedToken:
    value: str
    agentid: int
    issued_at: datetime
    expires_at: datetime
    revoked: bool = False


@dataclass(slots=True)
class Media:
    media_id: str
    type: str
    filename: str
    size: int
    created_at: datetime
    robot_key: str | None = None
    # The bytes, for media/get (media a member sent, or one uploaded).
    data: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class FileBody:
    """A cgi answer that is a file, not JSON (media/get)."""

    data: bytes
    content_type: str
    filename: str


@dataclass(slots=True)
class WelcomeCode:
    code: str
    userid: str
    external_userid: str
    issued_at: datetime
    used: bool = False


@dataclass(frozen=True, slots=True)
class MemberChange:
    """A customer group's member-list versions around one change (callback Last/CurMemVer)."""

    chat_id: str
    members: tuple[str, ...]
    last_version: str
    cur_version: str


def new_version() -> str:
    return secrets.token_hex(16)


@dataclass(slots=True)
class GroupMember:
    userid: str
    type: int  # 1 corp member, 2 external contact
    join_time: datetime
    join_scene: int  # 1 direct invite, 2 invite link, 3 QR code
    invitor: str | None


@dataclass(slots=True)
class CustomerGroup:
    chat_id: str
    name: str
    owner: str
    create_time: datetime
    notice: str = ""
    members: dict[str, GroupMember] = field(default_factory=dict)
    admins: list[str] = field(default_factory=list)
    member_version: str = field(default_factory=new_version)


@dataclass(slots=True)
class FollowUser:
    userid: str
    createtime: datetime
    state: str = ""
    remark: str = ""
    tag_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ExternalContact:
    external_userid: str
    name: str
    follow: dict[str, FollowUser] = field(default_factory=dict)
    type: int = 1  # 1 WeChat user, 2 WeCom user


@dataclass(slots=True)
class CorpTag:
    tag_id: str
    name: str
    group_id: str
    create_time: datetime
    order: int = 0


@dataclass(slots=True)
class TagGroup:
    group_id: str
    name: str
    create_time: datetime
    order: int = 0
    tag_ids: list[str] = field(default_factory=list)


GroupMsgStatus = Literal[0, 1, 2, 3]  # unsent, sent, not a friend, receive limit


@dataclass(slots=True)
class GroupMsgTarget:
    kind: Literal["external_userid", "chat_id"]
    target: str
    sender: str
    status: GroupMsgStatus = 0
    send_time: datetime | None = None


@dataclass(slots=True)
class GroupMsgTask:
    msgid: str
    chat_type: Literal["single", "group"]
    body: Json
    created_at: datetime
    targets: list[GroupMsgTarget]
    reminders: list[datetime] = field(default_factory=list)


@dataclass(slots=True)
class WelcomeTemplate:
    template_id: str
    body: Json
    created_at: datetime
