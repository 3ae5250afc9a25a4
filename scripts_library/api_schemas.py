"""Request and response models of `/admin/api/scripts` (ARCHITECTURE §4).

Content fields are deliberately loose here (plain strings, any attachments): the library's
validation checks them all at once, so one 422 lists every problem instead of pydantic
stopping at the first. Only what the database could not store is refused up front.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.api.admin.fields import INT32_MAX

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _single_line(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("不能包含换行、制表符等控制字符")
    return value


def _no_nul(value: str) -> str:
    # PostgreSQL text cannot hold NUL; newlines and tabs are fine in a body.
    if "\x00" in value:
        raise ValueError("不能包含 NUL 字符")
    return value


# Generous caps that only stop absurd payloads; the library names the real limits.
Line = Annotated[str, Field(max_length=1000), AfterValidator(_single_line)]
Text = Annotated[str, Field(max_length=100_000), AfterValidator(_no_nul)]
Note = Annotated[str, Field(max_length=2000), AfterValidator(_no_nul)]
Version = Annotated[int, Field(ge=1, le=INT32_MAX, description="版本号")]
Attachments = Annotated[list[dict[str, Any]], Field(max_length=20)]

_MSGTYPE_DOC = "text 文本 | markdown | image 图片 | news 图文"
_ATTACHMENTS_DOC = "news：[{title, description, url, picurl}]；image：[{path} 或 {url}]；其他为空"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo is a 422, not an ignored edit


class ScriptUpdate(_Input):
    title: Line = Field(description="标题（运营看的名字）")
    msgtype: Line = Field(description=_MSGTYPE_DOC, examples=["text"])
    body: Text = Field(default="", description="正文模板（Jinja2 语法，如 {{ student_name }}）")
    category: Line = Field(description="分类，如 daily、welcome")
    attachments: Attachments | None = Field(default=None, description=_ATTACHMENTS_DOC)
    schedule_hint: dict[str, Any] | None = Field(
        default=None, description="建议的定时（内容包用）；传 null 清除"
    )
    description: Text | None = Field(default=None, description="备注说明")
    group_delivery: Line | None = Field(
        default=None,
        description="客户群与微信学员的发送方式：mass_send 值得占用群发次数（开营、喜报、结营）"
        " | sop 群SOP，由员工在聊天工具栏发送 | auto 自动（默认）；省略表示保持不变",
    )
    note: Note = Field(default="", description="这次修改的说明，记入版本历史")


class ScriptCreate(ScriptUpdate):
    key: Line = Field(description="稳定的 key：小写字母、数字、_ . -", examples=["day1_tasks"])
    attachments: Attachments = Field(default_factory=list, description=_ATTACHMENTS_DOC)
    description: Text = Field(default="", description="备注说明")


class RollbackIn(_Input):
    version: Version = Field(description="回滚到哪一版（会新建一个内容相同的版本）")
    note: Note | None = Field(default=None, description="默认为「回滚到第 N 版」")


class PreviewIn(_Input):
    context: dict[str, Any] | None = Field(
        default=None,
        description='覆盖示例数据的变量，如 {"student_name": "小王", "day": 5}',
    )
    member_id: int | None = Field(
        default=None, ge=1, le=INT32_MAX, description="按这位学员渲染（学员昵称取自学员资料）"
    )
    version: Version | None = Field(default=None, description="预览历史版本；默认当前版本")


class ScriptOut(BaseModel):
    id: int
    key: str
    version: int = Field(description="当前版本号")
    title: str
    msgtype: str
    body: str
    category: str
    attachments: list[dict[str, Any]]
    schedule_hint: dict[str, Any] | None
    description: str
    group_delivery: str = Field(description="mass_send | sop | auto")
    created_at: datetime
    updated_at: datetime


class VersionSummaryOut(BaseModel):
    version: int
    author: str = Field(description="修改人")
    note: str = Field(description="修改说明")
    created_at: datetime


class VersionOut(VersionSummaryOut):
    title: str
    msgtype: str
    body: str
    category: str
    attachments: list[dict[str, Any]]
    schedule_hint: dict[str, Any] | None
    description: str
    group_delivery: str


class VersionsPage(BaseModel):
    items: list[VersionSummaryOut] = Field(description="从新到旧")
    total: int


class DiffOut(BaseModel):
    key: str
    a: int
    b: int
    diff: str = Field(description="统一 diff 文本；两版相同时为空")


class ArticleOut(BaseModel):
    title: str
    url: str
    description: str
    picurl: str


class ChannelCheckOut(BaseModel):
    channel: str = Field(description="robot 群机器人 | appchat 应用消息 | customer 客户群发")
    covers: list[str] = Field(description="适用的发送渠道")
    name: str = Field(description="渠道的中文名")
    fits: bool = Field(description="渲染结果能否在这个渠道发出")
    reason: str | None = Field(description="不能发出的原因")


class PreviewOut(BaseModel):
    key: str
    version: int
    msgtype: str
    content: str = Field(description="text、markdown 渲染后的正文")
    articles: list[ArticleOut] = Field(description="news 渲染后的文章")
    image_bytes: int = Field(description="image 的图片大小（字节）")
    content_bytes: int = Field(description="正文的 UTF-8 字节数（各渠道按字节限长）")
    channels: list[ChannelCheckOut]
