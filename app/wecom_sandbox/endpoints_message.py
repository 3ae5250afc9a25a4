"""POST /cgi-bin/message/send (应用消息) and /cgi-bin/appchat/send (应用群聊)."""

from __future__ import annotations

import json
from datetime import timedelta

from app.wecom_sandbox.app_content import APP_MSGTYPES, APPCHAT_MSGTYPES, check_content
from app.wecom_sandbox.errcodes import WeComError
from app.wecom_sandbox.records import Delivery, DeliveryStatus, Json
from app.wecom_sandbox.request import ApiRequest, text_of
from app.wecom_sandbox.state import SandboxState, new_id

DEFAULT_DUPLICATE_INTERVAL = 1800
MAX_DUPLICATE_INTERVAL = 4 * 3600


def _agentid(state: SandboxState, body: Json, token_agentid: int | None) -> int:
    if "agentid" not in body:
        raise WeComError(41011)
    agentid = body["agentid"]
    if isinstance(agentid, bool) or not isinstance(agentid, int) or agentid not in state.apps:
        raise WeComError(40056)
    if agentid != token_agentid:
        # The token belongs to another app of the corp (errcode doc 301002's own example).
        raise WeComError(301002)
    return agentid


def _ids(body: Json, key: str) -> list[str]:
    # Recipients are "|"-joined strings; an array is a client bug WeCom rejects.
    return [part for part in text_of(body, key).split("|") if part]


def _dedupe_key(agentid: int, msgtype: str, body: Json, recipients: list[str]) -> str:
    content = json.dumps(body.get(msgtype), sort_keys=True, ensure_ascii=False)
    return json.dumps([agentid, msgtype, content, sorted(recipients)], ensure_ascii=False)


def _is_duplicate(state: SandboxState, body: Json, key: str) -> bool:
    if body.get("enable_duplicate_check") != 1:
        return False
    interval = body.get("duplicate_check_interval", DEFAULT_DUPLICATE_INTERVAL)
    if isinstance(interval, bool) or not isinstance(interval, int) or interval < 0:
        raise WeComError(40058)
    seconds = min(interval, MAX_DUPLICATE_INTERVAL)
    last = state.delivered_at.get(key)
    return last is not None and state.clock.now() - last < timedelta(seconds=seconds)


def _deliver_to_members(
    state: SandboxState, agentid: int, members: list[str]
) -> tuple[list[str], list[str]]:
    """Per member 30/min and 1000/hour: beyond that WeCom drops the message, silently."""
    now = state.clock.now()
    delivered: list[str] = []
    dropped: list[str] = []
    for userid in members:
        key = (agentid, userid)
        if state.member_minute.allows(key, now) and state.member_hour.allows(key, now):
            state.member_minute.add(key, now)
            state.member_hour.add(key, now)
            delivered.append(userid)
        else:
            dropped.append(userid)
    return delivered, dropped


def message_send(state: SandboxState, req: ApiRequest) -> Json:
    body = req.json()
    agentid = _agentid(state, body, req.agentid)
    users, parties, tags = _ids(body, "touser"), _ids(body, "toparty"), _ids(body, "totag")
    if not (users or parties or tags):
        raise WeComError(82001)
    msgtype = check_content(state, body, APP_MSGTYPES)
    valid = list(state.users) if users == ["@all"] else [u for u in users if u in state.users]
    # The sandbox has no departments or member tags: every party and tag is invalid.
    invalid = {
        "invaliduser": "|".join(u for u in users if u not in state.users and u != "@all"),
        "invalidparty": "|".join(parties),
        "invalidtag": "|".join(tags),
    }
    if not valid:
        raise WeComError(81013, extra=invalid)
    msgid = new_id("", 24)
    key = _dedupe_key(agentid, msgtype, body, valid)
    now = state.clock.now()
    if _is_duplicate(state, body, key):
        delivery = Delivery("message", "|".join(valid), body, now, "duplicate", msgid=msgid)
    else:
        state.delivered_at[key] = now
        delivered, dropped = _deliver_to_members(state, agentid, valid)
        status: DeliveryStatus = "delivered" if delivered else "dropped"
        delivery = Delivery(
            "message",
            "|".join(valid),
            body,
            now,
            status,
            recipients=tuple(delivered),
            dropped=tuple(dropped),
            msgid=msgid,
        )
    state.deliveries.append(delivery)
    return {**invalid, "unlicenseduser": "", "msgid": msgid}


def appchat_send(state: SandboxState, req: ApiRequest) -> Json:
    body = req.json()
    chatid = text_of(body, "chatid")
    if not chatid:
        raise WeComError(86201)
    members = state.appchats.get(chatid)
    if members is None:
        raise WeComError(86003)
    check_content(state, body, APPCHAT_MSGTYPES)
    now = state.clock.now()
    state.deliveries.append(
        Delivery("appchat", chatid, body, now, recipients=tuple(members), msgid=new_id("", 24))
    )
    return {}
