"""Checks run before a script is saved: shape, template syntax and size, variables, the
sandbox's bounds, and the size of the rendered sample against every channel's limits, so a
script that WeCom would refuse is refused while the operator is still editing it. The admin
API runs these checks in a worker process (trial.py)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import TemplateSyntaxError, meta, nodes

from app.channels.messages import APP, MASS_SEND, ROBOT, WELCOME, Limits, OutMessage, check
from app.wecom.errors import UndeliverableError
from scripts_library.bounds import MAX_NODES
from scripts_library.errors import Problem, RenderError, ScriptValidationError, TemplateLimitError
from scripts_library.hints import schedule_problems
from scripts_library.models import (
    CATEGORY_MAX,
    KEY_MAX,
    TITLE_MAX,
    GroupDelivery,
    MsgType,
    ScriptContent,
)
from scripts_library.render import (
    ARTICLE_FIELDS,
    GLOBALS,
    parse,
    render,
    render_text,
    template_fields,
)
from scripts_library.variables import NAMES, SAMPLE, available

CHANNELS: tuple[Limits, ...] = (ROBOT, APP, MASS_SEND, WELCOME)
IMAGE_FIELDS = ("path", "url")
MSGTYPES = frozenset(m.value for m in MsgType)
_KEY = re.compile(rf"[a-z0-9][a-z0-9_.-]{{0,{KEY_MAX - 1}}}")

ImageLoad = Callable[[str], bytes]


def validate(
    content: ScriptContent, *, key: str | None = None, images: ImageLoad | None = None
) -> None:
    """Raise ScriptValidationError listing every problem, or return quietly."""
    problems = find_problems(content, key=key, images=images)
    if problems:
        raise ScriptValidationError(problems)


def find_problems(
    content: ScriptContent, *, key: str | None = None, images: ImageLoad | None = None
) -> list[Problem]:
    problems = key_problems(key) if key is not None else []
    problems += _field_problems(content) + _attachment_problems(content)
    problems += schedule_problems(content.schedule_hint)
    problems += _template_problems(content)
    if not problems:  # rendering a malformed script would only repeat the problems above
        problems += _render_problems(content, images)
    return list(dict.fromkeys(problems))  # channels often agree: say each thing once


def key_problems(key: str) -> list[Problem]:
    if _KEY.fullmatch(key):
        return []
    return [
        Problem(
            "key",
            f"key 只能用小写字母、数字、下划线、点和连字符（以字母或数字开头），"
            f"不超过 {KEY_MAX} 个字符：{key!r}",
        )
    ]


def _field_problems(content: ScriptContent) -> list[Problem]:
    problems = []
    for name, value, limit in (
        ("title", content.title, TITLE_MAX),
        ("category", content.category, CATEGORY_MAX),
    ):
        if not value.strip():
            problems.append(Problem(name, "不能为空。"))
        elif len(value) > limit:
            problems.append(Problem(name, f"不能超过 {limit} 个字符（现在 {len(value)} 个）。"))
    if content.msgtype not in MSGTYPES:
        kinds = "、".join(MsgType)
        problems.append(
            Problem("msgtype", f"不支持的消息类型：{content.msgtype}（可选：{kinds}）。")
        )
    elif content.msgtype in (MsgType.TEXT, MsgType.MARKDOWN) and not content.body.strip():
        problems.append(Problem("body", "正文不能为空。"))
    if content.group_delivery not in set(GroupDelivery):
        problems.append(
            Problem(
                "group_delivery",
                f"不支持的客户群发送方式：{content.group_delivery}"
                "（可选：mass_send 值得占用群发次数、sop 群SOP由员工发送、auto 自动）。",
            )
        )
    return problems


def _attachment_problems(content: ScriptContent) -> list[Problem]:
    attachments = content.attachments
    if content.msgtype == MsgType.NEWS:
        if not attachments:
            return [Problem("attachments", "图文消息至少要有一篇文章（title 和 url）。")]
        return [p for i, a in enumerate(attachments) for p in _article_problems(i, a)]
    if content.msgtype == MsgType.IMAGE:
        if len(attachments) != 1:
            return [
                Problem("attachments", "图片消息需要且只需要一个附件：{path: …} 或 {url: …}。")
            ]
        return _image_problems(attachments[0])
    if attachments and content.msgtype in (MsgType.TEXT, MsgType.MARKDOWN):
        return [
            Problem(
                "attachments", "文本和 markdown 消息不带附件；要发链接卡片请用图文（news）消息。"
            )
        ]
    return []


def _article_problems(index: int, article: Any) -> list[Problem]:
    field = f"attachments[{index}]"
    if not isinstance(article, Mapping):
        return [Problem(field, "每篇文章必须是一个对象：{title, description, url, picurl}。")]
    problems = _unknown_keys(field, article, ARTICLE_FIELDS)
    for name in ARTICLE_FIELDS:
        value = article.get(name, "")
        if not isinstance(value, str):
            problems.append(Problem(f"{field}.{name}", "必须是文字。"))
        elif name in ("title", "url") and not value.strip():
            problems.append(Problem(f"{field}.{name}", "不能为空。"))
    return problems


def _image_problems(attachment: Any) -> list[Problem]:
    field = "attachments[0]"
    if not isinstance(attachment, Mapping):
        return [Problem(field, "图片附件必须是一个对象：{path: …} 或 {url: …}。")]
    problems = _unknown_keys(field, attachment, IMAGE_FIELDS)
    refs = [attachment.get(name) for name in IMAGE_FIELDS if attachment.get(name)]
    if len(refs) != 1 or not isinstance(refs[0], str):
        problems.append(
            Problem(field, "请只填写 path（内容目录里的 PNG/JPG 文件）或 url 其中之一。")
        )
    return problems


def _unknown_keys(field: str, value: Mapping[str, Any], known: tuple[str, ...]) -> list[Problem]:
    return [
        Problem(f"{field}.{name}", f"不认识的字段：{name}（可用：{'、'.join(known)}）。")
        for name in value
        if name not in known
    ]


def _template_problems(content: ScriptContent) -> list[Problem]:
    problems: list[Problem] = []
    size = 0
    for field, source in template_fields(content):
        try:
            ast = parse(source)
        except TemplateSyntaxError as exc:
            problems.append(Problem(field, f"第 {exc.lineno} 行语法错误：{exc.message}"))
            continue
        except TemplateLimitError as exc:
            problems.append(Problem(field, str(exc)))
            continue
        before, size = size, size + sum(1 for _ in ast.find_all(nodes.Node))
        if before <= MAX_NODES < size:  # named once, on the field that crossed the bound
            problems.append(Problem(field, _too_complex(size)))
        unknown = meta.find_undeclared_variables(ast) - NAMES - GLOBALS
        problems += [Problem(field, _unknown_message(name)) for name in sorted(unknown)]
    return problems


def _too_complex(size: int) -> str:
    # The bound keeps compiling a stored script (at its first send) well under 100 ms.
    return (
        f"模板太复杂：超过上限 {MAX_NODES} 个语法单元（变量、标签、运算等，"
        f"现在至少 {size} 个），请拆分或简化"
    )


def _unknown_message(name: str) -> str:
    close = difflib.get_close_matches(name, NAMES, n=1)
    guess = f"，是不是想写 {close[0]}？" if close else ""
    return f"未知变量：{name}{guess}（可用变量：{available()}）"


def _render_problems(content: ScriptContent, images: ImageLoad | None) -> list[Problem]:
    variables = SAMPLE.variables()
    problems = []
    for field, source in template_fields(content):
        try:
            render_text(source, variables)
        except RenderError as exc:
            problems.append(Problem(field, str(exc)))
    if problems:
        return problems
    try:
        message = render(content, SAMPLE, images=images)
    except RenderError as exc:
        return [Problem("attachments[0]", str(exc))]
    return [p for limits in CHANNELS for p in channel_problems(message, limits)]


def channel_problems(message: OutMessage, limits: Limits) -> list[Problem]:
    """What `limits` refuse in the rendered sample (app.channels.messages.check decides)."""
    if message.msgtype == MsgType.MARKDOWN and limits.markdown is None:
        return []  # this channel never gets markdown; the schedule picks a channel that does
    if message.msgtype == MsgType.NEWS:
        return _news_channel_problems(message, limits)
    try:
        check(message, limits)
    except UndeliverableError as exc:
        field = "body" if message.msgtype in (MsgType.TEXT, MsgType.MARKDOWN) else "attachments[0]"
        return [Problem(field, _size_message(message, limits) or str(exc))]
    return []


def _size_message(message: OutMessage, limits: Limits) -> str | None:
    limit = limits.text if message.msgtype == MsgType.TEXT else limits.markdown
    size = len(message.content.encode())
    if message.msgtype in (MsgType.TEXT, MsgType.MARKDOWN) and limit is not None and size > limit:
        return (
            f"渲染后 {size} 字节，超过{limits.name}上限 {limit} 字节（按示例数据计算），请缩短。"
        )
    return None


def _news_channel_problems(message: OutMessage, limits: Limits) -> list[Problem]:
    problems = []
    if len(message.articles) > limits.articles:
        problems.append(
            Problem("attachments", f"{limits.name}的图文消息最多 {limits.articles} 篇文章。")
        )
    for index, article in enumerate(message.articles):
        try:
            check(OutMessage(message.msgtype, articles=(article,)), limits)
        except UndeliverableError as exc:
            name = "title" if len(article.title.encode()) > limits.title else "description"
            problems.append(Problem(f"attachments[{index}].{name}", f"渲染后{exc}"))
        if not article.url.startswith(("http://", "https://")):
            problems.append(
                Problem(f"attachments[{index}].url", "链接必须以 http:// 或 https:// 开头。")
            )
    return problems
