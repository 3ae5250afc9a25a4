"""Rendering scripts into messages, inside a bounded Jinja2 sandbox (`sandbox.py`).

Operators write the templates, so they run sandboxed: no attribute starting with an
underscore, no mutating calls, and bounds on what a render may build, nest, output and spend
(`bounds.py`). Unknown or unset variables raise (StrictUndefined) rather than reaching
students as blanks.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import (
    StrictUndefined,
    Template,
    TemplateError,
    TemplateSyntaxError,
    UndefinedError,
    meta,
)
from jinja2.exceptions import SecurityError
from jinja2.nodes import Template as TemplateAst

from app.channels.messages import Article, OutMessage
from scripts_library.bounds import budget
from scripts_library.errors import (
    RenderError,
    TemplateBudgetError,
    TemplateLimitError,
)
from scripts_library.images import ImageLoader
from scripts_library.models import MsgType, Script, ScriptContent, ScriptVersion
from scripts_library.sandbox import BoundedSandbox
from scripts_library.variables import RenderContext

ARTICLE_FIELDS = ("title", "description", "url", "picurl")  # each one a template
# A template that ran out of budget is refused at once for this long: a push renders the
# same template for every member, and each try would cost the server the whole budget again.
BUDGET_COOLDOWN_S = 600.0
_SPENT_MAX = 256  # templates remembered that way (only runaway ones get there)
NESTED_TOO_DEEP = "模板嵌套太深（括号、过滤器或标签一层套一层太多），请拆开写"
OUT_OF_MEMORY = "模板渲染占用的内存超过上限，请简化模板"
_UNDEFINED_NAME = re.compile(r"'(\w+)' is undefined")

Renderable = Script | ScriptVersion | ScriptContent

_ENV = BoundedSandbox(
    undefined=StrictUndefined,
    autoescape=False,  # plain text for WeCom, not HTML
    trim_blocks=True,  # `{% for %}` lines leave no blank lines behind
    lstrip_blocks=True,
)


# Names every template may use besides the variables (range, loop helpers, …).
GLOBALS: frozenset[str] = frozenset(_ENV.globals)

# source -> (monotonic time until which it is refused, why)
_spent: dict[str, tuple[float, str]] = {}


def parse(source: str) -> TemplateAst:
    """The template's syntax tree; raises jinja2's TemplateSyntaxError (with `lineno`),
    TemplateLimitError when it nests too deep to parse."""
    try:
        return _ENV.parse(source)
    except RecursionError:
        raise TemplateLimitError(NESTED_TOO_DEEP) from None


@lru_cache(maxsize=1024)
def _compile(source: str) -> Template:
    return _ENV.from_string(source)


def render_text(source: str, variables: Mapping[str, object]) -> str:
    """One template rendered with `variables`, surrounding whitespace removed."""
    _refuse_if_spent(source)
    try:
        with budget():
            return _compile(source).render(variables).strip()
    except TemplateBudgetError as exc:
        _remember_spent(source, str(exc))
        raise
    except RenderError:
        raise
    except TemplateSyntaxError as exc:
        raise RenderError(f"第 {exc.lineno} 行语法错误：{exc.message}") from exc
    except SecurityError as exc:
        raise RenderError(f"模板里有不允许的操作（出于安全原因已拦截）：{exc}") from exc
    except UndefinedError as exc:
        raise RenderError(_describe_undefined(exc)) from exc
    except RecursionError:
        raise TemplateLimitError(NESTED_TOO_DEEP) from None
    except MemoryError:
        raise TemplateLimitError(OUT_OF_MEMORY) from None
    except (TemplateError, ArithmeticError, LookupError, TypeError, ValueError) as exc:
        raise RenderError(f"渲染失败：{exc}") from exc


def _refuse_if_spent(source: str) -> None:
    refused = _spent.get(source)
    if refused is None:
        return
    until, reason = refused
    if time.monotonic() < until:
        raise TemplateBudgetError(reason)
    del _spent[source]


def _remember_spent(source: str, reason: str) -> None:
    if len(_spent) >= _SPENT_MAX:
        del _spent[next(iter(_spent))]  # the oldest
    _spent[source] = (time.monotonic() + BUDGET_COOLDOWN_S, reason)


def _describe_undefined(exc: UndefinedError) -> str:
    match = _UNDEFINED_NAME.search(exc.message or "")
    if match:
        return f"缺少变量：{match.group(1)}（这次发送没有提供它的值）"
    return f"变量没有这个属性或下标：{exc.message}"


def content_of(script: Renderable) -> ScriptContent:
    return script if isinstance(script, ScriptContent) else script.content


def template_fields(content: ScriptContent) -> list[tuple[str, str]]:
    """Every (field, template) pair of a script, named as validation problems name them."""
    pairs = [("body", content.body)]
    if content.msgtype == MsgType.NEWS:
        for index, article in enumerate(content.attachments):
            for name in ARTICLE_FIELDS:
                value = article.get(name)
                if isinstance(value, str):
                    pairs.append((f"attachments[{index}].{name}", value))
    return pairs


def render(
    script: Renderable,
    context: RenderContext,
    *,
    images: Callable[[str], bytes] | None = None,
) -> OutMessage:
    """The message `script` says with `context`'s values (RenderError if it cannot)."""
    content = content_of(script)
    variables = context.variables()
    if content.msgtype in (MsgType.TEXT, MsgType.MARKDOWN):
        return OutMessage(content.msgtype, content=render_text(content.body, variables))
    if content.msgtype == MsgType.NEWS:
        articles = tuple(_article(a, variables) for a in content.attachments)
        return OutMessage(content.msgtype, articles=articles)
    if content.msgtype == MsgType.IMAGE:
        return OutMessage(content.msgtype, image=(images or ImageLoader())(image_ref(content)))
    raise RenderError(f"不支持的消息类型：{content.msgtype}")


def _article(article: Mapping[str, Any], variables: Mapping[str, object]) -> Article:
    values = {name: render_text(str(article.get(name, "")), variables) for name in ARTICLE_FIELDS}
    return Article(**values)


def image_ref(content: ScriptContent) -> str:
    """The `path` or `url` of an image script's single attachment."""
    if len(content.attachments) != 1:
        raise RenderError("图片消息需要且只需要一个附件（path 或 url）。")
    attachment = content.attachments[0]
    ref = attachment.get("path") or attachment.get("url")
    if not isinstance(ref, str) or not ref.strip():
        raise RenderError("图片附件需要填写 path（内容目录里的文件）或 url。")
    return ref.strip()


@lru_cache(maxsize=1024)
def _names_in(source: str) -> frozenset[str]:
    try:
        return frozenset(meta.find_undeclared_variables(parse(source)))
    except (TemplateSyntaxError, TemplateLimitError):
        return frozenset()  # rendering will say what is wrong


def variables_used(script: Renderable) -> frozenset[str]:
    """The variables a script's templates refer to (so callers compute only those)."""
    names: frozenset[str] = frozenset()
    for _, source in template_fields(content_of(script)):
        names |= _names_in(source)
    return names
