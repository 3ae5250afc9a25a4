"""Response shapes of the WeCom endpoints CampBot calls (fields per wecom-api.md §4).

Unknown fields are kept (extra="allow"), so a field WeCom adds is not lost.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class WeComModel(BaseModel):
    model_config = ConfigDict(extra="allow")


class MessageSendResult(WeComModel):
    msgid: str = ""
    invaliduser: str = ""
    invalidparty: str = ""
    invalidtag: str = ""


class MsgTemplateResult(WeComModel):
    msgid: str = ""
    fail_list: list[str] = Field(default_factory=list)


class GroupMsgSendItem(WeComModel):
    userid: str = ""
    external_userid: str = ""
    chat_id: str = ""
    status: int = 0  # 0 unsent, 1 sent, 2 not a friend / not in group, 3 over the receive limit
    send_time: int | None = None


class GroupMsgSendResult(WeComModel):
    send_list: list[GroupMsgSendItem] = Field(default_factory=list)
    next_cursor: str = ""


class GroupChatMember(WeComModel):
    userid: str
    type: int = 0  # 1 internal member, 2 external contact
    join_time: int | None = None
    join_scene: int | None = None
    name: str = ""


class GroupChat(WeComModel):
    chat_id: str
    name: str = ""
    owner: str = ""
    create_time: int | None = None
    notice: str = ""
    member_list: list[GroupChatMember] = Field(default_factory=list)
    member_version: str = ""


class GroupChatListItem(WeComModel):
    chat_id: str
    status: int = 0


class GroupChatList(WeComModel):
    group_chat_list: list[GroupChatListItem] = Field(default_factory=list)
    next_cursor: str = ""


class ExternalProfile(WeComModel):
    external_userid: str
    name: str = ""
    type: int = 0
    avatar: str = ""


class FollowUser(WeComModel):
    userid: str
    remark: str = ""
    createtime: int | None = None
    state: str = ""


class ExternalContact(WeComModel):
    external_contact: ExternalProfile
    follow_user: list[FollowUser] = Field(default_factory=list)


class CorpTag(WeComModel):
    id: str
    name: str
    deleted: bool = False


class CorpTagGroup(WeComModel):
    group_id: str
    group_name: str
    tag: list[CorpTag] = Field(default_factory=list)
    deleted: bool = False
