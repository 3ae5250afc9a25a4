"""The Chinese words the console shows for the services' codes, in one place.

A code without an entry is shown as it is (`label`), so a status or channel that a service
gains later appears on every page at once, and only needs its word added here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

LABELS: dict[str, str] = {
    # outbox rows, 喜报 groups, firings and pushes
    "pending": "待发送",
    "claimed": "发送中",
    "sending": "发送中",
    "sent": "已发送",
    "dead": "失败",
    "failed": "失败",
    "cancelled": "已取消",
    "awaiting": "待确认",
    "awaiting_confirmation": "待群主确认",
    "awaiting_staff": "待员工发送",
    "skipped": "已跳过",
    "planned": "计划中",
    "fired": "已触发",
    "missed": "已错过",
    # channels
    "robot": "群机器人",
    "appchat": "应用群聊",
    "customer": "客户群",
    "customer_group": "客户群群发",
    "customer_single": "客户单发",
    "app_message": "应用消息",
    "staff": "群SOP（员工发送）",
    "remind_mass_send": "群发提醒",
    "welcome": "欢迎语",
    "passive_reply": "被动回复",
    "mark_tag": "打标签",
    # members, groups, entries
    "active": "在营",
    "lost": "已流失",
    "removed": "已移除",
    "dismissed": "已解散",
    "checkin": "打卡",
    "homework": "作业",
    "leave": "请假",
    "on_time": "按时",
    "makeup": "补卡",
    "approved": "已通过",
    # Q&A modes
    "exact": "整句相同",
    "contains": "包含关键词",
    "regex": "正则",
}

# The state a page paints a code in (a CSS class): good, waiting, bad, quiet.
TONES: dict[str, str] = {
    "sent": "good",
    "approved": "good",
    "fired": "good",
    "active": "good",
    "dead": "bad",
    "failed": "bad",
    "missed": "bad",
    "pending": "wait",
    "claimed": "wait",
    "sending": "wait",
    "awaiting": "wait",
    "awaiting_confirmation": "wait",
    "awaiting_staff": "wait",
    "planned": "wait",
}


def label(code: object) -> str:
    text = "" if code is None else str(code)
    return LABELS.get(text, text)


def tone(code: object) -> str:
    return TONES.get("" if code is None else str(code), "quiet")


def percent(rate: float | None) -> str:
    return "—" if rate is None else f"{rate * 100:.1f}%"


FILTERS: dict[str, Callable[..., Any]] = {"label": label, "tone": tone, "percent": percent}
