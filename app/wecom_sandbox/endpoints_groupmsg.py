"""企业群发: add_msg_template, get_groupmsg_send_result and remind_groupmsg_send.

A template is never delivered by the API call itself: each target waits until its
member confirms in 群发助手 (`SandboxState.confirm_msg_template`).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from app.wecom_sandbox.attachments import check_text_and_attachments
from app.wecom_sandbox.errcodes import WeComError
from app.wecom_sandbox.records import ExternalContact, GroupMsgTarget, GroupMsgTask, Json
from app.wecom_sandbox.request import ApiRequest, int_of, object_of, str_list, text_of
from app.wecom_sandbox.state import SandboxState, new_id

MAX_EXTERNAL_USERIDS = 10_000
MAX_CHAT_IDS = 2000
MAX_REMINDERS = 3  # per msgid per 24 h (path/92135 follow-ups)
REMINDER_WINDOW = timedelta(hours=24)
DEFAULT_RESULT_LIMIT = 500
MAX_RESULT_LIMIT = 1000


def _tag_filter_ok(contact: ExternalContact, tag_groups: list[list[str]]) -> bool:
    # Within a group any tag matches; every group must match.
    tags = {tag for follow in contact.follow.values() for tag in follow.tag_ids}
    return all(tags.intersection(group) for group in tag_groups)


def _tag_groups(body: Json) -> list[list[str]]:
    groups = object_of(body, "tag_filter").get("group_list") or []
    if not isinstance(groups, list) or not all(isinstance(g, dict) for g in groups):
        raise WeComError(40058)
    return [str_list(group, "tag_list") for group in groups]


def _sender_of(contact: ExternalContact | None, sender: str) -> str | None:
    if contact is None or not contact.follow:
        return None
    if sender:
        return sender if sender in contact.follow else None
    # Only the member the customer talked to last sends it; the newest follow relation here.
    return list(contact.follow)[-1]


def _single_targets(
    state: SandboxState, body: Json, sender: str
) -> tuple[list[GroupMsgTarget], list[str]]:
    wanted = str_list(body, "external_userid")
    if len(wanted) > MAX_EXTERNAL_USERIDS:
        raise WeComError(40058)
    tag_groups = _tag_groups(body)
    targets: list[GroupMsgTarget] = []
    failed: list[str] = []
    for external_userid in wanted or list(state.external_contacts):
        contact = state.external_contacts.get(external_userid)
        owner = _sender_of(contact, sender)
        if contact is None or owner is None:
            failed.extend([external_userid] if wanted else [])
        elif _tag_filter_ok(contact, tag_groups):
            targets.append(GroupMsgTarget("external_userid", external_userid, owner))
    return targets, failed


def _group_targets(
    state: SandboxState, body: Json, sender: str
) -> tuple[list[GroupMsgTarget], list[str]]:
    if not sender:
        raise WeComError(40058)
    wanted = str_list(body, "chat_id_list")
    if len(wanted) > MAX_CHAT_IDS:
        raise WeComError(40058)
    owned = [g.chat_id for g in state.customer_groups.values() if g.owner == sender]
    chosen = [c for c in wanted if c in owned] if wanted else owned
    failed = [c for c in wanted if c not in owned]
    return [GroupMsgTarget("chat_id", chat_id, sender) for chat_id in chosen], failed


def _chat_type(body: Json) -> Literal["single", "group"]:
    value = text_of(body, "chat_type") or "single"
    if value == "single":
        return "single"
    if value == "group":
        return "group"
    raise WeComError(86214)


def add_msg_template(state: SandboxState, req: ApiRequest) -> Json:
    body = req.json()
    chat_type = _chat_type(body)
    check_text_and_attachments(state, body)
    sender = text_of(body, "sender")
    if chat_type == "single":
        targets, failed = _single_targets(state, body, sender)
    else:
        targets, failed = _group_targets(state, body, sender)
    if not targets:
        raise WeComError(41048)
    task = GroupMsgTask(new_id("msg", 21), chat_type, body, state.clock.now(), targets)
    state.group_msgs[task.msgid] = task
    return {"fail_list": failed, "msgid": task.msgid}


def _task(state: SandboxState, body: Json) -> GroupMsgTask:
    msgid = text_of(body, "msgid")
    if not msgid:
        raise WeComError(41046)
    task = state.group_msgs.get(msgid)
    if task is None:
        raise WeComError(41047)
    return task


def _target_json(target: GroupMsgTarget) -> Json:
    entry: Json = {target.kind: target.target, "userid": target.sender, "status": target.status}
    if target.send_time is not None:
        entry["send_time"] = int(target.send_time.timestamp())
    return entry


def get_groupmsg_send_result(state: SandboxState, req: ApiRequest) -> Json:
    body = req.json()
    task = _task(state, body)
    userid = text_of(body, "userid")
    if not userid:
        raise WeComError(41009)
    limit = int_of(body, "limit", DEFAULT_RESULT_LIMIT)
    if not 1 <= limit <= MAX_RESULT_LIMIT:
        raise WeComError(40058)
    cursor = text_of(body, "cursor") or "0"
    if not cursor.isdigit():
        raise WeComError(50100)
    mine = [t for t in task.targets if t.sender == userid]
    start = int(cursor)
    page = mine[start : start + limit]
    more = start + limit < len(mine)
    return {
        "next_cursor": str(start + limit) if more else "",
        "send_list": [_target_json(t) for t in page],
    }


def remind_groupmsg_send(state: SandboxState, req: ApiRequest) -> Json:
    task = _task(state, req.json())
    now = state.clock.now()
    recent = [at for at in task.reminders if now - at < REMINDER_WINDOW]
    if len(recent) >= MAX_REMINDERS:
        # errcode doc: 41094 群发提醒超过频率限制 (the 3-per-24h rule is the doc's; errmsg ours).
        raise WeComError(41094)
    task.reminders = [*recent, now]
    return {}
