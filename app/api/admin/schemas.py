"""Request and response models of the admin API (`*Create`, `*Update`, `*Out`).

Field names follow ARCHITECTURE §4. Validators raise ValueError with a Chinese message; the
422 body names the field (`app.api.admin.errors`).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from app.api.admin.fields import (
    ChannelState,
    CohortRef,
    Days,
    Ident,
    Name,
    OperatorName,
    RobotKey,
    StartDate,
    Tag,
    Timezone,
    not_null,
)
from app.models import GroupChannel, GroupStatus, MemberStatus

T = TypeVar("T")


class Input(BaseModel):
    """Unknown fields are refused, so a typo is a 422 instead of a silently ignored edit."""

    model_config = ConfigDict(extra="forbid")


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ItemsPage(BaseModel, Generic[T]):
    items: list[T]
    total: int = Field(description="符合条件的总条数（不受分页影响）")
    limit: int
    offset: int


class FieldErrorOut(BaseModel):
    field: str = Field(examples=["start_date"])
    message: str = Field(examples=["日期格式应为 YYYY-MM-DD"])


class ValidationErrorOut(BaseModel):
    detail: list[FieldErrorOut]


class ErrorOut(BaseModel):
    detail: str = Field(examples=["训练营期次 7 不存在。"])


Responses = dict[int | str, dict[str, Any]]
ERRORS_401: Responses = {401: {"model": ErrorOut, "description": "缺少或无效的管理令牌"}}
ERRORS_404: Responses = {404: {"model": ErrorOut, "description": "对象不存在"}}
ERRORS_429: Responses = {
    429: {"model": ErrorOut, "description": "该地址令牌错误次数过多：按 Retry-After 秒后再试"}
}
ERRORS_409: Responses = {409: {"model": ErrorOut, "description": "与已有数据或当前状态冲突"}}
ERRORS_422: Responses = {
    422: {"model": ValidationErrorOut, "description": "输入不合法：逐个字段说明原因"}
}


# --- tokens and audit -------------------------------------------------------------------------


class TokenCreate(Input):
    name: OperatorName = Field(description="操作员名称，记录在审计日志中")


class TokenOut(Output):
    id: int
    name: str
    prefix: str = Field(description="令牌开头几位，用于辨认")
    created_by: str
    created_at: datetime
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="令牌明文：只在创建时显示这一次，请立即保存")


class AuditOut(Output):
    id: int
    at: datetime
    actor: str
    resource: str
    resource_id: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None


# --- cohorts ----------------------------------------------------------------------------------


class CohortCreate(Input):
    name: Name = Field(description="期次名称，如「21 天写作营 第 3 期」")
    camp: Name = Field(description="所属训练营")
    start_date: StartDate = Field(description="开营日（第 0 天），YYYY-MM-DD")
    days: Days = Field(description="上课天数：第 0 天开营，第 1 天到第 days 天上课")
    channel_state: ChannelState = Field(description="招生渠道活码的 State（≤30 字符），全局唯一")
    timezone: Timezone | None = Field(
        default=None, description="期次的时区，默认 CAMPBOT_TIMEZONE"
    )


class CohortUpdate(Input):
    name: Name | None = None
    camp: Name | None = None
    start_date: StartDate | None = Field(default=None, description="改期：移动开营日")
    days: Days | None = None
    channel_state: ChannelState | None = None
    timezone: Timezone | None = None

    _present_means_set = field_validator("*", mode="before")(not_null)


class CohortOut(Output):
    id: int
    name: str
    camp: str
    start_date: date
    days: int
    channel_state: str
    timezone: str
    end_date: date = Field(description="最后一天（第 days 天）")
    group_count: int
    member_count: int
    created_at: datetime
    updated_at: datetime


# --- groups -----------------------------------------------------------------------------------


class GroupCreate(Input):
    cohort_id: CohortRef | None = Field(default=None, description="所属期次")
    name: Name
    channel: GroupChannel = Field(
        description="robot 群机器人 | appchat 应用群聊 | customer 客户群"
    )
    robot_key: RobotKey | None = Field(
        default=None, description="群机器人 webhook 的 key（robot 必填；可直接粘贴 webhook 地址）"
    )
    chat_id: Ident | None = Field(default=None, description="群 ID（appchat、customer 必填）")
    owner_userid: Ident | None = Field(default=None, description="群主 userid（customer 必填）")


class GroupUpdate(Input):
    cohort_id: CohortRef | None = None
    name: Name | None = None
    channel: GroupChannel | None = None
    robot_key: RobotKey | None = None
    chat_id: Ident | None = None
    owner_userid: Ident | None = None
    status: GroupStatus | None = None

    _present_means_set = field_validator("name", "channel", "status", mode="before")(not_null)


class GroupOut(Output):
    id: int
    cohort_id: int | None
    name: str | None
    channel: GroupChannel
    robot_key: str | None
    chat_id: str | None
    owner_userid: str | None
    status: GroupStatus
    member_count: int = Field(description="当前在群成员数（据回调事件统计）")
    created_at: datetime
    updated_at: datetime


# --- members ----------------------------------------------------------------------------------


class MemberCreate(Input):
    external_userid: Ident | None = Field(default=None, description="外部联系人 id（学员）")
    userid: Ident | None = Field(default=None, description="企业成员 userid（内部学员）")
    name: Name | None = None
    cohort_id: CohortRef | None = None
    staff_userid: Ident | None = Field(default=None, description="跟进该学员的员工 userid")


class MemberUpdate(Input):
    name: Name | None = None
    status: MemberStatus | None = None
    staff_userid: Ident | None = None
    cohort_id: CohortRef | None = Field(default=None, description="转到另一期；null 表示移出期次")

    _present_means_set = field_validator("status", mode="before")(not_null)


class TagsChange(Input):
    add: list[Tag] = Field(default_factory=list, max_length=50)
    remove: list[Tag] = Field(default_factory=list, max_length=50)


class MemberOut(Output):
    id: int
    external_userid: str | None
    userid: str | None
    name: str | None
    status: MemberStatus
    staff_userid: str | None
    channel_state: str | None
    cohort_id: int | None
    tags: list[str]
    h5_url: str = Field(description="学员的个人 H5 链接（签名，可单独吊销）")
    created_at: datetime
    updated_at: datetime


# --- outbox -----------------------------------------------------------------------------------


class OutboxOut(Output):
    id: int
    key: str
    channel: str
    target: str
    payload: dict[str, Any]
    status: str
    attempts: int
    max_attempts: int
    not_before: datetime
    in_doubt: int = Field(description="可能已送达却被重发的次数")
    errcode: int | None = Field(description="最后一次企业微信错误码")
    last_error: str | None
    hint: str | None = Field(description="最后一次错误的处理建议")
    wecom_msgid: str | None
    created_at: datetime
    updated_at: datetime
    sent_at: datetime | None
