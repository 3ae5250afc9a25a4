"""Content checks shared by message/send and appchat/send (path/90236, path/90248)."""

from __future__ import annotations

from app.wecom_sandbox.errcodes import WeComError
from app.wecom_sandbox.records import Json
from app.wecom_sandbox.request import object_of, text_of, utf8_len
from app.wecom_sandbox.state import SandboxState

TEXT_MAX_BYTES = 2048  # text and markdown (45002 beyond)
MAX_ARTICLES = 8
MEDIA_TYPES = {"image": "image", "voice": "voice", "video": "video", "file": None}
APP_MSGTYPES = frozenset(
    {
        "text",
        "markdown",
        "image",
        "voice",
        "video",
        "file",
        "textcard",
        "news",
        "mpnews",
        "miniprogram_notice",
        "template_card",
    }
)
APPCHAT_MSGTYPES = frozenset(
    {"text", "markdown", "image", "voice", "video", "file", "textcard", "news", "mpnews"}
)


def check_content(state: SandboxState, body: Json, allowed: frozenset[str]) -> str:
    """Validate the message part of `body` as WeCom does; returns the msgtype."""
    msgtype = body.get("msgtype")
    if not isinstance(msgtype, str) or msgtype not in allowed:
        raise WeComError(40008)
    payload = object_of(body, msgtype)
    if msgtype in ("text", "markdown"):
        _check_text(text_of(payload, "content"))
    elif msgtype in MEDIA_TYPES:
        _check_media(state, text_of(payload, "media_id"), MEDIA_TYPES[msgtype])
    elif msgtype == "textcard":
        _check_textcard(payload)
    elif msgtype in ("news", "mpnews"):
        check_articles(payload)
    return msgtype


def _check_text(content: str) -> None:
    if not content:
        raise WeComError(44004)
    if utf8_len(content) > TEXT_MAX_BYTES:
        raise WeComError(45002)


def _check_media(state: SandboxState, media_id: str, wanted_type: str | None) -> None:
    if not media_id:
        raise WeComError(41006)
    media = state.live_media(media_id)
    if media is None or (wanted_type is not None and media.type != wanted_type):
        raise WeComError(40007)


def _check_textcard(card: Json) -> None:
    if not text_of(card, "title"):
        raise WeComError(41016)
    if not text_of(card, "description"):
        raise WeComError(41033)
    if not text_of(card, "url"):
        raise WeComError(41010)


def check_articles(payload: Json) -> None:
    """news articles, as message/send, appchat/send and the robot webhook check them."""
    articles = payload.get("articles")
    if not isinstance(articles, list) or not 1 <= len(articles) <= MAX_ARTICLES:
        raise WeComError(45008)
    for article in articles:
        if not isinstance(article, dict) or not text_of(article, "title"):
            raise WeComError(41016)
