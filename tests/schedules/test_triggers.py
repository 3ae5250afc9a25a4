"""Trigger arithmetic on the camp's clock, whatever the server's clock is."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from schedules.triggers import At, CohortDay, Cron, MemberDay, TriggerError, parse_trigger

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = date(2026, 3, 2)  # day 0 = 开营


def _cohort_day(day: int, at: str) -> datetime:
    trigger = parse_trigger({"type": "cohort_day", "day": day, "time": at}, tz=SHANGHAI)
    assert isinstance(trigger, CohortDay)
    [occurrence] = trigger.occurrences(start_date=START, tz=SHANGHAI)
    return occurrence.due_at


@pytest.mark.parametrize(
    ("day", "at", "utc"),
    [
        (0, "20:00", datetime(2026, 3, 2, 12, 0, tzinfo=UTC)),
        (1, "08:00", datetime(2026, 3, 3, 0, 0, tzinfo=UTC)),
        # 23:59 on day 1 in Shanghai is still day 1 there, but 15:59 UTC.
        (1, "23:59", datetime(2026, 3, 3, 15, 59, tzinfo=UTC)),
        # 00:00 on day 2 in Shanghai is 16:00 UTC on the *previous* UTC date.
        (2, "00:00", datetime(2026, 3, 3, 16, 0, tzinfo=UTC)),
        (-1, "21:00", datetime(2026, 3, 1, 13, 0, tzinfo=UTC)),  # the evening before 开营
        (-3, "00:00", datetime(2026, 2, 26, 16, 0, tzinfo=UTC)),
    ],
)
def test_cohort_day_is_local_to_the_camp(day: int, at: str, utc: datetime) -> None:
    assert _cohort_day(day, at) == utc


def test_occurrence_names_are_stable_across_a_moved_start() -> None:
    trigger = CohortDay(
        3, parse_trigger({"type": "cohort_day", "day": 3, "time": "08:00"}, tz=SHANGHAI).at
    )  # type: ignore[union-attr]
    before = trigger.occurrences(start_date=START, tz=SHANGHAI)[0]
    after = trigger.occurrences(start_date=date(2026, 3, 3), tz=SHANGHAI)[0]
    assert before.name == after.name == "day3"
    assert (after.due_at - before.due_at).days == 1


def test_member_day_counts_from_the_local_join_date() -> None:
    trigger = parse_trigger({"type": "member_day", "day": 1, "time": "09:30"}, tz=SHANGHAI)
    assert isinstance(trigger, MemberDay)
    # Joined at 23:30 Shanghai (15:30 UTC): "day 1" is the next Shanghai day.
    joined = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
    assert trigger.due_for(joined_at=joined, tz=SHANGHAI) == datetime(
        2026, 3, 3, 1, 30, tzinfo=UTC
    )


def test_cron_runs_on_the_camp_clock() -> None:
    trigger = parse_trigger({"type": "cron", "cron": "0 21 * * *"}, tz=SHANGHAI)
    assert isinstance(trigger, Cron)
    found = trigger.occurrences(
        tz=SHANGHAI, start=datetime(2026, 3, 2, tzinfo=UTC), end=datetime(2026, 3, 5, tzinfo=UTC)
    )
    assert [o.due_at.hour for o in found] == [13, 13, 13]
    assert len({o.name for o in found}) == 3


def test_at_without_offset_is_camp_time() -> None:
    trigger = parse_trigger({"type": "at", "at": "2026-03-05T20:00"}, tz=SHANGHAI)
    assert isinstance(trigger, At)
    assert trigger.occurrences()[0].due_at == datetime(2026, 3, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"type": "cohort_day", "day": 1, "time": "8:00"}, "HH:MM"),
        ({"type": "cohort_day", "day": 1, "time": "24:00"}, "HH:MM"),
        ({"type": "cohort_day", "day": "1", "time": "08:00"}, "整数"),
        ({"type": "cron", "cron": "61 * * * *"}, "cron"),
        ({"type": "at", "at": "tomorrow"}, "ISO-8601"),
        ({"type": "weekly"}, "未知的触发类型"),
    ],
)
def test_invalid_triggers_are_refused_in_chinese(data: dict[str, object], words: str) -> None:
    with pytest.raises(TriggerError, match=words):
        parse_trigger(data, tz=SHANGHAI)
