"""群机器人: POST /cgi-bin/webhook/send and /cgi-bin/webhook/upload_media, keyed, no token."""

from __future__ import annotations

import base64
import binascii
import hashlib

from app.wecom_sandbox.app_content import check_articles
from app.wecom_sandbox.errcodes import WeComError
from app.wecom_sandbox.media_rules import is_amr, is_jpg_or_png
from app.wecom_sandbox.records import Delivery, Json
from app.wecom_sandbox.request import ApiRequest, object_of, str_list, text_of, utf8_len
from app.wecom_sandbox.state import SandboxState

MAX_BYTES = {"text": 2048, "markdown": 4096}
IMAGE_MAX_BYTES = 2 * 1024 * 1024
UPLOAD_MIN_BYTES = 5
UPLOAD_MAX_BYTES = {"file": 20 * 1024 * 1024, "voice": 2 * 1024 * 1024}
CARD_TYPES = frozenset({"text_notice", "news_notice"})


def _robot_key(state: SandboxState, req: ApiRequest) -> str:
    # The real server would ignore a stray token; rejecting it catches a client that runs its
    # token machinery for webhooks (which must never refresh or retry on token errcodes).
    if "access_token" in req.query:
        raise WeComError(40058)
    key = req.query.get("key", "")
    if key not in state.robots:
        raise WeComError(93000)
    return key


def _check_text(msgtype: str, payload: Json) -> None:
    content = text_of(payload, "content")
    if not content:
        raise WeComError(44004)
    limit = MAX_BYTES[msgtype]
    # Documented limits; a 2022 live answer allowed text up to 5120 B, so being strict is safe.
    if utf8_len(content) > limit:
        raise WeComError(40058, f"{msgtype}.content exceed max length {limit}.")


def _check_image(payload: Json) -> None:
    encoded, md5 = text_of(payload, "base64"), text_of(payload, "md5")
    if not encoded or not md5:
        raise WeComError(40058)
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise WeComError(40058) from exc
    if hashlib.md5(raw, usedforsecurity=False).hexdigest() != md5.lower():
        raise WeComError(301019)
    if len(raw) > IMAGE_MAX_BYTES:
        raise WeComError(40009)
    if not is_jpg_or_png(raw):
        raise WeComError(40004)


def _check_news(payload: Json) -> None:
    check_articles(payload)
    # Unlike app messages, a robot's news article must link somewhere.
    if not all(text_of(article, "url") for article in payload["articles"]):
        raise WeComError(41010)


def _check_robot_media(state: SandboxState, key: str, msgtype: str, payload: Json) -> None:
    media_id = text_of(payload, "media_id")
    if not media_id:
        raise WeComError(41006)
    media = state.live_media(media_id, robot_key=key)
    if media is None or (msgtype == "voice" and media.type != "voice"):
        raise WeComError(40007)


def _check_body(state: SandboxState, key: str, body: Json) -> tuple[str, tuple[str, ...]]:
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str):
        raise WeComError(40008)
    payload = object_of(body, msgtype)
    if msgtype in MAX_BYTES:
        _check_text(msgtype, payload)
    elif msgtype == "image":
        _check_image(payload)
    elif msgtype == "news":
        _check_news(payload)
    elif msgtype in ("file", "voice"):
        _check_robot_media(state, key, msgtype, payload)
    elif msgtype == "template_card":
        if payload.get("card_type") not in CARD_TYPES:
            raise WeComError(40058)
    else:
        raise WeComError(40008)
    mentions = str_list(payload, "mentioned_list") + str_list(payload, "mentioned_mobile_list")
    # markdown has no mentioned_list: WeCom only honours <@userid> inside its content.
    return msgtype, () if msgtype == "markdown" else tuple(mentions)


def webhook_send(state: SandboxState, req: ApiRequest) -> Json:
    key = _robot_key(state, req)
    body = req.json()
    _, mentioned = _check_body(state, key, body)
    now = state.clock.now()
    if not state.robot_minute.allows(key, now):
        raise WeComError(45009)
    state.robot_minute.add(key, now)
    state.deliveries.append(Delivery("webhook", key, body, now, mentioned=mentioned))
    return {}


def webhook_upload_media(state: SandboxState, req: ApiRequest) -> Json:
    # Probed on qyapi: the file is checked before the key.
    part = req.file("media")
    if part is None or not part.data:
        raise WeComError(44001)
    key = _robot_key(state, req)
    media_type = req.query.get("type", "")
    if media_type not in UPLOAD_MAX_BYTES:
        raise WeComError(40005)
    if len(part.data) < UPLOAD_MIN_BYTES:
        raise WeComError(40006)
    if len(part.data) > UPLOAD_MAX_BYTES[media_type]:
        raise WeComError(45001)
    if media_type == "voice" and not is_amr(part.data):
        raise WeComError(40004)
    media = state.add_media(media_type, len(part.data), filename=part.filename, robot_key=key)
    return {
        "type": media_type,
        "media_id": media.media_id,
        "created_at": str(int(media.created_at.timestamp())),
    }
