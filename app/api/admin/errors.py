"""How admin errors look on the wire.

    401/404/409/429  {"detail": "中文原因"}  (401 also sends WWW-Authenticate: Bearer,
                                            429 Retry-After)
    422          {"detail": [{"field": "start_date", "message": "中文原因"}, ...]}

Pydantic's validation errors are translated by error type, so the message is Chinese and
`field` is the body/query/path name the operator sent (nested: "add.0").
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.admin.errors import AdminError, AuthError, FieldProblem, InvalidInput, TooManyFailures

_SOURCES = frozenset({"body", "query", "path", "header", "cookie"})
_QUOTED = re.compile(r"'([^']*)'")

_FIXED: Mapping[str, str] = {
    "missing": "必填",
    "json_invalid": "不是合法的 JSON",
    "json_type": "应为 JSON",
    "model_type": "应为 JSON 对象",
    "model_attributes_type": "应为 JSON 对象",
    "dict_type": "应为 JSON 对象",
    "string_type": "应为字符串",
    "string_pattern_mismatch": "格式不正确",
    "int_type": "应为整数",
    "int_parsing": "应为整数",
    "int_from_float": "应为整数",
    "bool_type": "应为 true 或 false",
    "bool_parsing": "应为 true 或 false",
    "list_type": "应为数组",
    "extra_forbidden": "不支持的字段",
    "date_type": "日期格式应为 YYYY-MM-DD",
    "date_parsing": "日期格式应为 YYYY-MM-DD",
    "date_from_datetime_parsing": "日期格式应为 YYYY-MM-DD",
    "datetime_type": "时间格式应为 ISO 8601",
    "datetime_parsing": "时间格式应为 ISO 8601",
}


def _message(error: Mapping[str, Any]) -> str:
    kind = str(error.get("type", ""))
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    if kind in _FIXED:
        return _FIXED[kind]
    if kind == "string_too_short":
        return "不能为空" if ctx.get("min_length") == 1 else f"至少 {ctx.get('min_length')} 个字符"
    if kind == "string_too_long":
        return f"最多 {ctx.get('max_length')} 个字符"
    if kind == "too_long":
        return f"最多 {ctx.get('max_length')} 项"
    if kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = next(iter(ctx.values()), "")
        words = {
            "greater_than_equal": "不能小于",
            "greater_than": "应大于",
            "less_than_equal": "不能大于",
            "less_than": "应小于",
        }
        return f"{words[kind]} {bound}"
    if kind in ("literal_error", "enum"):
        choices = _QUOTED.findall(str(ctx.get("expected", "")))
        return "取值应为以下之一：" + "、".join(choices) if choices else "取值不在允许范围内"
    if kind == "value_error":
        # Our validators raise ValueError with a Chinese message.
        return str(error.get("msg", "")).removeprefix("Value error, ")
    return f"输入不合法（{error.get('msg', kind)}）"


def _field(error: Mapping[str, Any]) -> str:
    loc = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        return "body"
    if len(loc) > 1 and loc[0] in _SOURCES:
        loc = loc[1:]
    return ".".join(loc) or "body"


def field_problems(errors: Iterable[Mapping[str, Any]]) -> list[FieldProblem]:
    """One problem per field (pydantic may report a field more than once, e.g. for unions)."""
    seen: dict[str, FieldProblem] = {}
    for error in errors:
        problem = FieldProblem(_field(error), _message(error))
        seen.setdefault(problem.field, problem)
    return list(seen.values())


def _problems_response(problems: Sequence[FieldProblem]) -> JSONResponse:
    detail = [{"field": p.field, "message": p.message} for p in problems]
    return JSONResponse({"detail": detail}, status_code=422)


def validation_response(exc: RequestValidationError) -> JSONResponse:
    return _problems_response(field_problems(exc.errors()))


def error_response(exc: AdminError) -> JSONResponse:
    if isinstance(exc, InvalidInput):
        return _problems_response(exc.problems)
    headers = None
    if isinstance(exc, AuthError):
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(exc, TooManyFailures):
        headers = {"Retry-After": str(exc.retry_after)}
    return JSONResponse({"detail": exc.message}, status_code=exc.status_code, headers=headers)
