"""Plaintext callback XML as WeCom writes it (path/96361, path/90240), before encryption."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal

from app.wecom_sandbox.records import MemberChange

Field = tuple[str, str | int]


def _cdata(value: str) -> str:
    # "]]>" cannot sit inside one CDATA section; split it across two.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _elements(fields: Sequence[Field]) -> str:
    return "".join(
        f"<{name}>{value}</{name}>"
        if isinstance(value, int)
        else f"<{name}>{_cdata(value)}</{name}>"
        for name, value in fields
    )


def _xml(fields: Sequence[Field], tail: str = "") -> str:
    return f"<xml>{_elements(fields)}{tail}</xml>"


def _event(corp_id: str, event: str, at: datetime) -> list[Field]:
    return [
        ("ToUserName", corp_id),
        ("FromUserName", "sys"),
        ("CreateTime", int(at.timestamp())),
        ("MsgType", "event"),
        ("Event", event),
    ]


def external_contact_added(
    corp_id: str, *, userid: str, external_userid: str, state: str, welcome_code: str, at: datetime
) -> str:
    return _xml(
        [
            *_event(corp_id, "change_external_contact", at),
            ("ChangeType", "add_external_contact"),
            ("UserID", userid),
            ("ExternalUserID", external_userid),
            ("State", state),
            ("WelcomeCode", welcome_code),
        ]
    )


def follow_user_deleted(corp_id: str, *, userid: str, external_userid: str, at: datetime) -> str:
    return _xml(
        [
            *_event(corp_id, "change_external_contact", at),
            ("ChangeType", "del_follow_user"),
            ("UserID", userid),
            ("ExternalUserID", external_userid),
        ]
    )


def chat_members_changed(
    corp_id: str,
    change: MemberChange,
    *,
    detail: Literal["add_member", "del_member"],
    scene: int,
    at: datetime,
) -> str:
    scene_field: Field = ("JoinScene" if detail == "add_member" else "QuitScene", scene)
    items = "".join(f"<Item>{_cdata(member)}</Item>" for member in change.members)
    versions = _elements([("LastMemVer", change.last_version), ("CurMemVer", change.cur_version)])
    return _xml(
        [
            *_event(corp_id, "change_external_chat", at),
            ("ChatId", change.chat_id),
            ("ChangeType", "update"),
            ("UpdateDetail", detail),
            scene_field,
            ("MemChangeCnt", len(change.members)),
        ],
        tail=f"<MemChangeList>{items}</MemChangeList>{versions}",
    )


def member_text(
    corp_id: str, *, userid: str, content: str, msg_id: str, agent_id: int, at: datetime
) -> str:
    return _xml(
        [
            ("ToUserName", corp_id),
            ("FromUserName", userid),
            ("CreateTime", int(at.timestamp())),
            ("MsgType", "text"),
            ("Content", content),
            ("MsgId", int(msg_id) if msg_id.isdigit() else msg_id),
            ("AgentID", agent_id),
        ]
    )


def member_image(
    corp_id: str,
    *,
    userid: str,
    pic_url: str,
    media_id: str,
    msg_id: str,
    agent_id: int,
    at: datetime,
) -> str:
    return _xml(
        [
            ("ToUserName", corp_id),
            ("FromUserName", userid),
            ("CreateTime", int(at.timestamp())),
            ("MsgType", "image"),
            ("PicUrl", pic_url),
            ("MediaId", media_id),
            ("MsgId", int(msg_id) if msg_id.isdigit() else msg_id),
            ("AgentID", agent_id),
        ]
    )
