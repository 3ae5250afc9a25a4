"""What every admin resource's models share: `Input`, `Output`, the page, the error bodies.

Each resource declares its own `*Create`, `*Update`, `*Out` beside its routes. Field names
follow ARCHITECTURE §4. Validators raise ValueError with a Chinese message; the
422 body names the field (`app.api.admin.errors`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

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


# --- audit ---------------------------------------------------------------------------------------


class AuditOut(Output):
    id: int
    at: datetime
    actor: str
    resource: str
    resource_id: str
    action: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
