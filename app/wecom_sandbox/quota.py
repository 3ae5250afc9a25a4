"""The receive quota of 企业群发 (path/92135): each customer and each customer group gets at
most "days in the month" 群发 a month, or — as the corp sets in 群发助手 — 7 a week or 1 a
day. WeCom counts what the target received, on Beijing time; a task confirmed past the
quota settles with status 3. An independent reading of the rule: never `app.quota`."""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

MODES = ("month_days", "week_7", "day_1")
WECOM_TZ = ZoneInfo("Asia/Shanghai")


def window(mode: str, day: date) -> tuple[date, date, int]:
    """[start, end) of the window holding `day`, and how many 群发 fit in it."""
    if mode == "day_1":
        return day, day + timedelta(days=1), 1
    if mode == "week_7":
        monday = day - timedelta(days=day.weekday())
        return monday, monday + timedelta(days=7), 7
    if mode != "month_days":
        raise ValueError(f"unknown quota mode {mode!r} (one of {', '.join(MODES)})")
    days = calendar.monthrange(day.year, day.month)[1]
    first = day.replace(day=1)
    return first, first + timedelta(days=days), days


def received_in_window(mode: str, now: datetime, received_at: Iterable[datetime]) -> int:
    start, end, _ = window(mode, now.astimezone(WECOM_TZ).date())
    return sum(1 for at in received_at if start <= at.astimezone(WECOM_TZ).date() < end)
