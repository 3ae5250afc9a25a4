"""The schedule a script states for itself (`schedule_hint`), checked for shape.

It is the ARCHITECTURE §4 schedule — a trigger with its `target` beside the trigger's
fields — plus `{"type": "event", "event": …}` for scripts a bot sends when something
happens (a new contact, a newcomer in a group, a 喜报) rather than at a time:

    {"type": "cohort_day", "day": 1, "time": "08:00", "target": {"type": "cohort_groups"}}
    {"type": "member_day", "day": 3, "time": "10:00",
     "target": {"type": "members", "filter": "all"}}
    {"type": "cron", "cron": "0 21 * * *",
     "target": {"type": "members", "filter": "not_checked_in_today"}}
    {"type": "at", "at": "2026-03-08T20:00:00+08:00",
     "target": {"type": "groups", "group_ids": [3]}}
    {"type": "event", "event": "contact_added"}
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from scripts_library.errors import Problem

FIELD = "schedule_hint"
EVENTS = {
    "contact_added": "学员添加员工为好友时（欢迎语）",
    "group_joined": "新成员入群时（入群欢迎）",
    "achievement": "登记学员喜报时",
    "checkin_reminder": "打卡提醒发出时（群内 @ 未打卡的内部学员）",
}
MEMBER_FILTERS = ("all", "not_checked_in_today")
_TIME = re.compile(r"([01]\d|2[0-3]):[0-5]\d")
_DAY_RANGE = {"cohort_day": (-30, 365), "member_day": (0, 365)}


def schedule_problems(hint: Mapping[str, Any] | None) -> list[Problem]:
    if hint is None:
        return []
    if not isinstance(hint, Mapping):
        return [
            Problem(FIELD, "排期必须是一个对象，例如 {type: cohort_day, day: 1, time: '08:00'}。")
        ]
    kind = hint.get("type")
    if kind == "event":
        return _event_problems(hint)
    check = _TRIGGER_CHECKS.get(kind) if isinstance(kind, str) else None
    if check is None:
        kinds = "、".join([*_TRIGGER_CHECKS, "event"])
        return [Problem(f"{FIELD}.type", f"不认识的排期类型：{kind}（可选：{kinds}）。")]
    return check(hint) + target_problems(hint.get("target"))


def _event_problems(hint: Mapping[str, Any]) -> list[Problem]:
    event = hint.get("event")
    if isinstance(event, str) and event in EVENTS:
        return []
    events = "、".join(f"{name}（{meaning}）" for name, meaning in EVENTS.items())
    return [Problem(f"{FIELD}.event", f"不认识的事件：{event}（可选：{events}）。")]


def _day_problems(hint: Mapping[str, Any]) -> list[Problem]:
    problems = []
    low, high = _DAY_RANGE[hint["type"]]
    day = hint.get("day")
    if not isinstance(day, int) or isinstance(day, bool) or not low <= day <= high:
        problems.append(Problem(f"{FIELD}.day", f"day 必须是 {low} 到 {high} 之间的整数。"))
    time = hint.get("time")
    if not isinstance(time, str) or not _TIME.fullmatch(time):
        problems.append(Problem(f"{FIELD}.time", "time 必须是 24 小时制的 HH:MM，例如 08:00。"))
    return problems


def _cron_problems(hint: Mapping[str, Any]) -> list[Problem]:
    cron = hint.get("cron")
    if isinstance(cron, str) and len(cron.split()) == 5:
        return []
    return [
        Problem(f"{FIELD}.cron", "cron 必须是 5 段的表达式（分 时 日 月 周），例如 0 21 * * *。")
    ]


def _at_problems(hint: Mapping[str, Any]) -> list[Problem]:
    at = hint.get("at")
    try:
        parsed = datetime.fromisoformat(at) if isinstance(at, str) else None
    except ValueError:
        parsed = None
    if parsed is not None and parsed.tzinfo is not None:
        return []
    return [
        Problem(f"{FIELD}.at", "at 必须是带时区的 ISO-8601 时间，例如 2026-03-08T20:00:00+08:00。")
    ]


_TRIGGER_CHECKS: dict[str, Callable[[Mapping[str, Any]], list[Problem]]] = {
    "cohort_day": _day_problems,
    "member_day": _day_problems,
    "cron": _cron_problems,
    "at": _at_problems,
}


def target_problems(target: Any) -> list[Problem]:
    field = f"{FIELD}.target"
    if not isinstance(target, Mapping):
        return [Problem(field, "需要发送对象 target，例如 {type: cohort_groups}。")]
    kind = target.get("type")
    if kind == "cohort_groups":
        return []
    if kind == "groups":
        ids = target.get("group_ids")
        if isinstance(ids, list) and ids and all(type(i) is int for i in ids):
            return []
        return [Problem(f"{field}.group_ids", "group_ids 必须是至少一个群 id（整数）的列表。")]
    if kind == "members":
        if target.get("filter") in MEMBER_FILTERS:
            return []
        return [Problem(f"{field}.filter", f"filter 必须是 {' 或 '.join(MEMBER_FILTERS)}。")]
    return [
        Problem(
            f"{field}.type", f"不认识的发送对象：{kind}（可选：cohort_groups、groups、members）。"
        )
    ]
