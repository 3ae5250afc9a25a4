"""客户群: groupchat/get and groupchat/list; group_welcome_template add/edit/get/del."""

from __future__ import annotations

from app.wecom_sandbox.errcodes import WeComError
from app.wecom_sandbox.records import CustomerGroup, GroupMember, Json, WelcomeTemplate
from app.wecom_sandbox.request import ApiRequest, int_of, object_of, str_list, text_of, utf8_len
from app.wecom_sandbox.state import SandboxState, new_id

MAX_LIST_LIMIT = 1000
MAX_OWNER_FILTER = 100
MAX_TEMPLATES = 100
TEMPLATE_TEXT_MAX_BYTES = 3000
TEMPLATE_PARTS = ("text", "image", "link", "miniprogram", "file", "video")


def _member_json(member: GroupMember, state: SandboxState, need_name: bool) -> Json:
    entry: Json = {
        "userid": member.userid,
        "type": member.type,
        "join_time": int(member.join_time.timestamp()),
        "join_scene": member.join_scene,
        "group_nickname": "",
    }
    if member.invitor:
        entry["invitor"] = {"userid": member.invitor}
    if need_name:
        contact = state.external_contacts.get(member.userid)
        entry["name"] = contact.name if contact else state.users.get(member.userid, "")
    return entry


def _group_json(group: CustomerGroup, state: SandboxState, need_name: bool) -> Json:
    return {
        "chat_id": group.chat_id,
        "name": group.name,
        "owner": group.owner,
        "create_time": int(group.create_time.timestamp()),
        "notice": group.notice,
        "member_list": [_member_json(m, state, need_name) for m in group.members.values()],
        "admin_list": [{"userid": userid} for userid in group.admins],
        "member_version": group.member_version,
    }


def groupchat_get(state: SandboxState, req: ApiRequest) -> Json:
    body = req.json()
    chat_id = text_of(body, "chat_id")
    if not chat_id:
        raise WeComError(40058)
    group = state.customer_groups.get(chat_id)
    if group is None:
        raise WeComError(90501)
    return {"group_chat": _group_json(group, state, int_of(body, "need_name", 0) == 1)}


def groupchat_list(state: SandboxState, req: ApiRequest) -> Json:
    body = req.json()
    limit = int_of(body, "limit", 0)
    status_filter = int_of(body, "status_filter", 0)
    owners = str_list(object_of(body, "owner_filter"), "userid_list")
    if not 1 <= limit <= MAX_LIST_LIMIT or not 0 <= status_filter <= 3:
        raise WeComError(40058)
    if len(owners) > MAX_OWNER_FILTER:
        raise WeComError(40058)
    cursor = text_of(body, "cursor") or "0"
    if not cursor.isdigit():
        raise WeComError(50100)
    # Sandbox groups never await 离职继承 (filters 1-3), so only filter 0 (no filter) lists them.
    groups = [
        g
        for g in state.customer_groups.values()
        if status_filter == 0 and (not owners or g.owner in owners)
    ]
    start = int(cursor)
    page = groups[start : start + limit]
    more = start + limit < len(groups)
    return {
        "group_chat_list": [{"chat_id": g.chat_id, "status": 0} for g in page],
        "next_cursor": str(start + limit) if more else "",
    }


def _template_body(body: Json) -> Json:
    parts = {name: object_of(body, name) for name in TEMPLATE_PARTS if body.get(name)}
    if not parts:
        raise WeComError(44004)
    content = text_of(parts.get("text", {}), "content")
    if utf8_len(content) > TEMPLATE_TEXT_MAX_BYTES:
        raise WeComError(45002)
    return parts


def _template(state: SandboxState, body: Json) -> WelcomeTemplate:
    template = state.welcome_templates.get(text_of(body, "template_id"))
    if template is None:
        raise WeComError(40058)
    return template


def welcome_template_add(state: SandboxState, req: ApiRequest) -> Json:
    parts = _template_body(req.json())
    if len(state.welcome_templates) >= MAX_TEMPLATES:
        raise WeComError(41055)
    template = WelcomeTemplate(new_id("msg", 21), parts, state.clock.now())
    state.welcome_templates[template.template_id] = template
    return {"template_id": template.template_id}


def welcome_template_edit(state: SandboxState, req: ApiRequest) -> Json:
    body = req.json()
    template = _template(state, body)
    # Edit replaces only the parts given.
    template.body = {**template.body, **_template_body(body)}
    return {}


def welcome_template_get(state: SandboxState, req: ApiRequest) -> Json:
    return dict(_template(state, req.json()).body)


def welcome_template_del(state: SandboxState, req: ApiRequest) -> Json:
    template = _template(state, req.json())
    del state.welcome_templates[template.template_id]
    return {}
