"""The text + attachments shape shared by 欢迎语 and 企业群发 (path/92137, path/92135)."""

from __future__ import annotations

from typing import Any

from app.wecom_sandbox.errcodes import WeComError
from app.wecom_sandbox.records import Json
from app.wecom_sandbox.request import object_of, text_of, utf8_len
from app.wecom_sandbox.state import SandboxState

MAX_ATTACHMENTS = 9
TEXT_MAX_BYTES = 4000  # 群发 per WxJava WxCpMsgTemplate; the welcome limit is unpublished
ATTACHMENT_TYPES = frozenset({"image", "link", "miniprogram", "video", "file"})
MEDIA_TYPES = {"image": "image", "video": "video", "file": None}


def check_text_and_attachments(state: SandboxState, body: Json) -> None:
    content = text_of(object_of(body, "text"), "content")
    attachments: Any = body.get("attachments") or []
    if not isinstance(attachments, list):
        raise WeComError(40058)
    if not content and not attachments:
        raise WeComError(44004)
    if utf8_len(content) > TEXT_MAX_BYTES:
        raise WeComError(45002)
    if len(attachments) > MAX_ATTACHMENTS:
        raise WeComError(41064)
    for attachment in attachments:
        _check_attachment(state, attachment)


def _check_attachment(state: SandboxState, attachment: Any) -> None:
    if not isinstance(attachment, dict):
        raise WeComError(41065)
    msgtype = attachment.get("msgtype")
    if msgtype not in ATTACHMENT_TYPES:
        raise WeComError(41065)
    payload = object_of(attachment, msgtype)
    if msgtype == "link" and not (text_of(payload, "title") and text_of(payload, "url")):
        raise WeComError(40058)
    if msgtype in MEDIA_TYPES:
        _check_media(state, payload, msgtype)


def _check_media(state: SandboxState, payload: Json, msgtype: str) -> None:
    media_id = text_of(payload, "media_id")
    if msgtype == "image" and not media_id and text_of(payload, "pic_url"):
        return
    if not media_id:
        raise WeComError(41006)
    media = state.live_media(media_id)
    wanted = MEDIA_TYPES[msgtype]
    if media is None or (wanted is not None and media.type != wanted):
        raise WeComError(40007)
