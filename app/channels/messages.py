"""A rendered message, and the limits each channel puts on it — checked before sending,
so CampBot refuses with a clear reason instead of WeCom truncating or rejecting it."""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from typing import Any

from app.wecom.errors import UndeliverableError

MSGTYPES = ("text", "markdown", "image", "news", "file")
PNG, JPEG = b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"


@dataclass(frozen=True, slots=True)
class Article:
    title: str
    url: str
    description: str = ""
    picurl: str = ""


@dataclass(frozen=True, slots=True)
class OutMessage:
    msgtype: str
    content: str = ""  # text / markdown
    image: bytes = b""  # image (PNG or JPEG)
    articles: tuple[Article, ...] = ()  # news
    file: bytes = b""  # file
    filename: str = ""
    mentions: tuple[str, ...] = field(default=())  # userids to @ in robot text

    def to_json(self) -> dict[str, Any]:
        """The portable form stored in the outbox row's payload."""
        data: dict[str, Any] = {"msgtype": self.msgtype}
        if self.content:
            data["content"] = self.content
        if self.image:
            data["image"] = base64.b64encode(self.image).decode()
        if self.file:
            data["file"], data["filename"] = base64.b64encode(self.file).decode(), self.filename
        if self.articles:
            data["articles"] = [vars_of(a) for a in self.articles]
        if self.mentions:
            data["mentions"] = list(self.mentions)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutMessage:
        return cls(
            msgtype=data["msgtype"],
            content=data.get("content", ""),
            image=base64.b64decode(data.get("image", "")),
            articles=tuple(Article(**a) for a in data.get("articles", [])),
            file=base64.b64decode(data.get("file", "")),
            filename=data.get("filename", ""),
            mentions=tuple(data.get("mentions", [])),
        )


def vars_of(article: Article) -> dict[str, str]:
    return {
        "title": article.title,
        "url": article.url,
        "description": article.description,
        "picurl": article.picurl,
    }


@dataclass(frozen=True, slots=True)
class Limits:
    """Byte limits of one channel (wecom-api.md §4)."""

    name: str
    text: int
    markdown: int | None  # None: the channel has no markdown
    image: int
    articles: int
    title: int = 128
    description: int = 512


ROBOT = Limits("群机器人", text=2048, markdown=4096, image=2 * 1024 * 1024, articles=8)
APP = Limits("应用消息", text=2048, markdown=2048, image=10 * 1024 * 1024, articles=8)
MASS_SEND = Limits("客户群发", text=4000, markdown=None, image=10 * 1024 * 1024, articles=9)
WELCOME = Limits("欢迎语", text=4000, markdown=None, image=10 * 1024 * 1024, articles=9)


def _too_long(what: str, size: int, limit: int, channel: str) -> UndeliverableError:
    return UndeliverableError(f"{what}为 {size} 字节，超过{channel}上限 {limit} 字节，请缩短。")


def check(message: OutMessage, limits: Limits) -> None:
    """Raise UndeliverableError (in Chinese, naming the problem) if `limits` refuse it."""
    if message.msgtype not in MSGTYPES:
        raise UndeliverableError(f"不支持的消息类型：{message.msgtype}")
    if message.msgtype in ("text", "markdown"):
        _check_text(message, limits)
        if message.image:  # an image riding along (mass sends attach it)
            _check_image(message.image, limits)
    elif message.msgtype == "image":
        _check_image(message.image, limits)
    elif message.msgtype == "news":
        _check_articles(message.articles, limits)
    elif not message.file:
        raise UndeliverableError("文件消息没有内容。")


def _check_text(message: OutMessage, limits: Limits) -> None:
    if not message.content.strip():
        raise UndeliverableError("消息内容为空。")
    limit = limits.text if message.msgtype == "text" else limits.markdown
    if limit is None:
        raise UndeliverableError(f"{limits.name}不支持 markdown 消息，请改为文本。")
    size = len(message.content.encode())
    if size > limit:
        raise _too_long("消息内容", size, limit, limits.name)


def _check_image(image: bytes, limits: Limits) -> None:
    if not image.startswith((PNG, JPEG)):
        raise UndeliverableError("图片必须是 PNG 或 JPG 格式。")
    if len(image) > limits.image:
        raise _too_long("图片", len(image), limits.image, limits.name)


def _check_articles(articles: tuple[Article, ...], limits: Limits) -> None:
    if not 1 <= len(articles) <= limits.articles:
        raise UndeliverableError(f"图文消息须有 1 到 {limits.articles} 篇文章。")
    for article in articles:
        if len(article.title.encode()) > limits.title:
            raise _too_long("图文标题", len(article.title.encode()), limits.title, limits.name)
        if len(article.description.encode()) > limits.description:
            raise _too_long(
                "图文描述", len(article.description.encode()), limits.description, limits.name
            )
