"""Validated field types of the admin API: bounded, printable, and explained in Chinese.

Strings are length-bounded by their columns and free of control characters, so no input
reaches the database it cannot store (PostgreSQL refuses NUL, and over-long values).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from fastapi import Path, Query
from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

INT32_MAX = 2**31 - 1
INT64_MAX = 2**63 - 1
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_YMD = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("不能包含换行、制表符等控制字符")
    return value


def _bounded(max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


_CLEAN = AfterValidator(_printable)
Name = Annotated[str, _bounded(200), _CLEAN]
Ident = Annotated[str, _bounded(128), _CLEAN]  # WeCom ids: userid, external_userid, chat_id
Tag = Annotated[str, _bounded(32), _CLEAN]
ChannelState = Annotated[str, _bounded(30), _CLEAN]  # WeCom's limit for a 渠道活码 State
OperatorName = Annotated[str, _bounded(64), _CLEAN]


def _ymd(value: object) -> object:
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _YMD.fullmatch(value):
        raise ValueError("日期格式应为 YYYY-MM-DD")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError("没有这一天") from None


def _plausible_year(value: date) -> date:
    if not 2000 <= value.year <= 2099:
        raise ValueError("年份应在 2000–2099 之间")
    return value


def _known_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (KeyError, ValueError, OSError):
        raise ValueError("未知的时区（应为 IANA 时区名，如 Asia/Shanghai）") from None
    return value


def _robot_key(value: object) -> object:
    # Operators paste the whole webhook URL; the key is its `key` parameter.
    if isinstance(value, str) and value.strip().lower().startswith(("http://", "https://")):
        keys = parse_qs(urlsplit(value.strip()).query).get("key")
        if not keys:
            raise ValueError("机器人 webhook 地址里没有 key 参数")
        return keys[0]
    return value


StartDate = Annotated[date, BeforeValidator(_ymd), AfterValidator(_plausible_year)]
Timezone = Annotated[str, StringConstraints(max_length=64), AfterValidator(_known_zone)]
RobotKey = Annotated[str, BeforeValidator(_robot_key), _bounded(128), _CLEAN]
Days = Annotated[int, Field(ge=1, le=366)]
CohortRef = Annotated[int, Field(ge=1, le=INT32_MAX)]

IdPath = Annotated[int, Path(ge=1, le=INT32_MAX, description="对象 id")]
BigIdPath = Annotated[int, Path(ge=1, le=INT64_MAX, description="对象 id")]
Limit = Annotated[int, Query(ge=1, le=200, description="每页条数")]
Offset = Annotated[int, Query(ge=0, le=INT32_MAX, description="跳过前多少条")]


def not_null(value: object) -> object:
    if value is None:
        raise ValueError("不能为 null")
    return value


# Query strings end up as SQL parameters: bounded and printable, like body strings.
PRINTABLE = r"^[^\x00-\x1f\x7f]*$"
CohortQuery = Annotated[int | None, Query(ge=1, le=INT32_MAX, description="期次 id")]
