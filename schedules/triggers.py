"""Triggers: when a schedule is due, as timezone-aware UTC datetimes.

A trigger is the JSON of ARCHITECTURE §4 (`cohort_day`, `member_day`, `cron`, `at`)
parsed into a frozen dataclass. Each yields *occurrences*: a stable name for a
firing (e.g. "day3") and its due time. The name lets a re-plan (a cohort moved by
a day) move a pending firing instead of creating a second one, and never re-send
one that already went out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

_HHMM = re.compile(r"([01]\d|2[0-3]):([0-5]\d)")
MAX_CRON_OCCURRENCES = 500
MAX_DAY = 366  # a year either side of the start: larger days overflow the date arithmetic


class TriggerError(ValueError):
    """A trigger that cannot be planned; the message is Chinese, for operators."""


@dataclass(frozen=True, slots=True)
class Occurrence:
    name: str
    due_at: datetime


def _clock_time(value: Any) -> time:
    found = _HHMM.fullmatch(str(value))
    if not found:
        raise TriggerError(f"时间须为 HH:MM（24 小时制），收到 {value!r}")
    return time(int(found.group(1)), int(found.group(2)))


def local_due(day0: date, day: int, at: time, tz: ZoneInfo) -> datetime:
    """Day `day` after `day0` (day 0 = 开营) at `at` on the camp's clock, as a UTC time."""
    return datetime.combine(day0 + timedelta(days=day), at, tzinfo=tz).astimezone(ZoneInfo("UTC"))


@dataclass(frozen=True, slots=True)
class CohortDay:
    """Day N of the cohort at HH:MM (N may be negative: posts before 开营)."""

    day: int
    at: time

    def occurrences(self, *, start_date: date, tz: ZoneInfo) -> list[Occurrence]:
        return [Occurrence(f"day{self.day}", local_due(start_date, self.day, self.at, tz))]


@dataclass(frozen=True, slots=True)
class MemberDay:
    """N days after a member joined, at HH:MM: the touch plan, and late joiners."""

    day: int
    at: time

    def due_for(self, *, joined_at: datetime, tz: ZoneInfo) -> datetime:
        return local_due(joined_at.astimezone(tz).date(), self.day, self.at, tz)


@dataclass(frozen=True, slots=True)
class Cron:
    expression: str

    def occurrences(self, *, tz: ZoneInfo, start: datetime, end: datetime) -> list[Occurrence]:
        trigger = self._trigger(tz)
        found: list[Occurrence] = []
        due = trigger.get_next_fire_time(None, start)
        while due is not None and due < end and len(found) < MAX_CRON_OCCURRENCES:
            utc = due.astimezone(ZoneInfo("UTC"))
            found.append(Occurrence(utc.strftime("cron-%Y%m%dT%H%MZ"), utc))
            due = trigger.get_next_fire_time(due, due + timedelta(seconds=1))
        return found

    def _trigger(self, tz: ZoneInfo) -> CronTrigger:
        try:
            return CronTrigger.from_crontab(self.expression, timezone=tz)
        except ValueError as exc:
            raise TriggerError(f"cron 表达式无效：{self.expression!r}（{exc}）") from exc


@dataclass(frozen=True, slots=True)
class At:
    at: datetime

    def occurrences(self) -> list[Occurrence]:
        utc = self.at.astimezone(ZoneInfo("UTC"))
        return [Occurrence(utc.strftime("at-%Y%m%dT%H%M%SZ"), utc)]


Trigger = CohortDay | MemberDay | Cron | At


def parse_trigger(data: dict[str, Any], *, tz: ZoneInfo) -> Trigger:
    """The trigger for ARCHITECTURE §4's JSON; TriggerError (Chinese) when it is invalid."""
    if not isinstance(data, dict):  # a PATCH may send null
        raise TriggerError(f"触发条件须为 JSON 对象，收到 {data!r}")
    kind = data.get("type")
    if kind in ("cohort_day", "member_day"):
        day = data.get("day")
        if not isinstance(day, int) or isinstance(day, bool):
            raise TriggerError(f"day 须为整数，收到 {day!r}")
        if abs(day) > MAX_DAY:
            raise TriggerError(f"day 须在 -{MAX_DAY} 到 {MAX_DAY} 之间，收到 {day}")
        at = _clock_time(data.get("time"))
        return CohortDay(day, at) if kind == "cohort_day" else MemberDay(day, at)
    if kind == "cron":
        cron = Cron(str(data.get("cron", "")))
        cron._trigger(tz)  # validate now, not at the first firing
        return cron
    if kind == "at":
        try:
            when = datetime.fromisoformat(str(data.get("at")))
        except ValueError as exc:
            raise TriggerError(f"at 须为 ISO-8601 时间，收到 {data.get('at')!r}") from exc
        when = when if when.tzinfo else when.replace(tzinfo=tz)
        try:
            when.astimezone(ZoneInfo("UTC"))  # planning converts it; year 9999 may overflow
        except OverflowError as exc:
            raise TriggerError(f"at 超出可用的时间范围，收到 {data.get('at')!r}") from exc
        return At(when)
    raise TriggerError(f"未知的触发类型：{kind!r}（可用：cohort_day, member_day, cron, at）")
