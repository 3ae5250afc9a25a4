"""客户联系: externalcontact/get, send_welcome_msg, mark_tag and get_corp_tag_list."""

from __future__ import annotations

import re

from app.wecom_sandbox.attachments import check_text_and_attachments
from app.wecom_sandbox.errcodes import WeComError
from app.wecom_sandbox.records import CorpTag, Delivery, ExternalContact, FollowUser, Json
from app.wecom_sandbox.request import ApiRequest, str_list, text_of
from app.wecom_sandbox.state import WELCOME_CODE_TTL, SandboxState

# Real external_userids are "wm"/"wo" + ~30 URL-safe characters.
_EXTERNAL_ID = re.compile(r"w[mo][A-Za-z0-9_-]{6,62}")


def _contact(state: SandboxState, external_userid: str) -> ExternalContact:
    if not external_userid:
        raise WeComError(41035)
    contact = state.external_contacts.get(external_userid)
    if contact is not None and contact.follow:
        return contact
    if contact is None and not _EXTERNAL_ID.fullmatch(external_userid):
        raise WeComError(40096)
    raise WeComError(84061)


def _tag_json(tag: CorpTag, state: SandboxState) -> Json:
    group = state.tag_groups[tag.group_id]
    return {"group_name": group.name, "tag_name": tag.name, "tag_id": tag.tag_id, "type": 1}


def _follow_json(follow: FollowUser, state: SandboxState) -> Json:
    return {
        "userid": follow.userid,
        "remark": follow.remark,
        "description": "",
        "createtime": int(follow.createtime.timestamp()),
        "tags": [_tag_json(state.tags[tag_id], state) for tag_id in follow.tag_ids],
        "remark_mobiles": [],
        "add_way": 1,
        "oper_userid": follow.userid,
        **({"state": follow.state} if follow.state else {}),
    }


def externalcontact_get(state: SandboxState, req: ApiRequest) -> Json:
    contact = _contact(state, req.query.get("external_userid", ""))
    return {
        "external_contact": {
            "external_userid": contact.external_userid,
            "name": contact.name,
            "type": contact.type,
            "avatar": "",
            "gender": 0,
        },
        "follow_user": [_follow_json(f, state) for f in contact.follow.values()],
        "next_cursor": "",
    }


def send_welcome_msg(state: SandboxState, req: ApiRequest) -> Json:
    body = req.json()
    code = text_of(body, "welcome_code")
    if not code:
        raise WeComError(41049)
    check_text_and_attachments(state, body)
    welcome = state.welcome_codes.get(code)
    now = state.clock.now()
    if welcome is None or now - welcome.issued_at > WELCOME_CODE_TTL:
        raise WeComError(41050)
    if welcome.used:
        raise WeComError(41051)
    welcome.used = True
    state.deliveries.append(
        Delivery(
            "welcome",
            welcome.external_userid,
            body,
            now,
            recipients=(welcome.external_userid,),
            sender=welcome.userid,
        )
    )
    return {}


def mark_tag(state: SandboxState, req: ApiRequest) -> Json:
    body = req.json()
    userid = text_of(body, "userid")
    if not userid:
        raise WeComError(41009)
    contact = _contact(state, text_of(body, "external_userid"))
    add, remove = str_list(body, "add_tag"), str_list(body, "remove_tag")
    if not add and not remove:
        raise WeComError(40058)
    if any(tag_id not in state.tags for tag_id in add + remove):
        raise WeComError(40068)
    follow = contact.follow.get(userid)
    if follow is None:
        raise WeComError(84061)
    kept = [t for t in follow.tag_ids if t not in remove]
    follow.tag_ids = kept + [t for t in dict.fromkeys(add) if t not in kept]
    return {}


def get_corp_tag_list(state: SandboxState, req: ApiRequest) -> Json:
    body = req.json(optional=True)
    group_ids, tag_ids = str_list(body, "group_id"), str_list(body, "tag_id")
    groups = list(state.tag_groups.values())
    # path/96320: group_id wins over tag_id; neither means everything.
    if group_ids:
        groups = [g for g in groups if g.group_id in group_ids]
    result = []
    for group in groups:
        tags = [state.tags[t] for t in group.tag_ids if group_ids or not tag_ids or t in tag_ids]
        if tags or not tag_ids or group_ids:
            result.append(_group_json(group.group_id, state, tags))
    return {"tag_group": result}


def _group_json(group_id: str, state: SandboxState, tags: list[CorpTag]) -> Json:
    group = state.tag_groups[group_id]
    return {
        "group_id": group.group_id,
        "group_name": group.name,
        "create_time": int(group.create_time.timestamp()),
        "order": group.order,
        "deleted": False,
        "tag": [
            {
                "id": tag.tag_id,
                "name": tag.name,
                "create_time": int(tag.create_time.timestamp()),
                "order": tag.order,
                "deleted": False,
            }
            for tag in tags
        ],
    }
