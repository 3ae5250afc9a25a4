"""The variables a script may use: the one place they are named, described and sampled.

A template sees only the fields of `RenderContext` that are set (not None), so a script
that needs a value its sender did not provide fails loudly (StrictUndefined) instead of
printing "None" to students. Validation renders every script with `SAMPLE`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from scripts_library.errors import Problem, ScriptValidationError

WEEKDAYS = ("周一", "周二", "周三", "周四", "周五", "周六", "周日")


@dataclass(frozen=True, slots=True)
class LeaderboardEntry:
    name: str
    points: int


@dataclass(frozen=True, slots=True)
class Variable:
    name: str
    description: str
    sample: object


def _var(description: str, sample: object) -> Any:
    return field(default=None, metadata={"description": description, "sample": sample})


@dataclass(frozen=True, slots=True)
class RenderContext:
    """What a script can say about the student, the cohort and today."""

    student_name: str | None = _var("学员昵称", "小林")
    cohort_name: str | None = _var("期次名称", "第 6 期")
    camp_name: str | None = _var("训练营名称", "跨境电商 7 天实战营")
    total_days: int | None = _var("训练营总天数", 7)
    day: int | None = _var("今天是训练营第几天（开营日为第 0 天）", 3)
    date: str | None = _var("今天的日期，如 3月3日", "3月3日")
    weekday: str | None = _var("今天星期几，如 周二", "周二")
    streak: int | None = _var("学员连续打卡天数", 3)
    points: int | None = _var("学员积分", 120)
    rank: int | None = _var("学员排名", 5)
    h5_url: str | None = _var(
        "学员的个人学习页链接（打卡、交作业、看排名）", "https://camp.example.com/h5/m/demo-token"
    )
    group_name: str | None = _var("群名称", "跨境电商实战营·6 期 3 群")
    assistant_name: str | None = _var("助教或班主任的称呼", "小鹿老师")
    checkin_count: int | None = _var("今天已打卡人数", 36)
    unchecked_count: int | None = _var("今天还没打卡的人数", 12)
    leaderboard: tuple[LeaderboardEntry, ...] | None = _var(
        "排行榜，按名次排列；每项有 name（昵称）和 points（积分）",
        (
            LeaderboardEntry("小林", 160),
            LeaderboardEntry("Amy", 155),
            LeaderboardEntry("阿杰", 150),
            LeaderboardEntry("木子", 140),
            LeaderboardEntry("大橙子", 135),
        ),
    )
    newcomer_names: tuple[str, ...] | None = _var("刚入群的学员昵称列表", ("阿杰", "Amy", "小周"))
    achievement_title: str | None = _var("喜报标题", "出单啦")
    achievement_detail: str | None = _var("喜报详情", "上架第 3 天出了第一单，销售额 89 美元")

    def variables(self) -> dict[str, object]:
        """The template namespace: only the variables that are set."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if getattr(self, f.name) is not None
        }


VARIABLES: tuple[Variable, ...] = tuple(
    Variable(f.name, f.metadata["description"], f.metadata["sample"])
    for f in fields(RenderContext)
)
NAMES: frozenset[str] = frozenset(v.name for v in VARIABLES)
_SAMPLES: dict[str, Any] = {v.name: v.sample for v in VARIABLES}
SAMPLE = RenderContext(**_SAMPLES)


def available() -> str:
    return "、".join(v.name for v in VARIABLES)


def sample_context(overrides: Mapping[str, object] | None = None) -> RenderContext:
    """The sample context with some values replaced (an operator previewing a script)."""
    values: dict[str, Any] = dict(overrides or {})
    unknown = sorted(set(values) - NAMES)
    if unknown:
        raise ScriptValidationError(
            Problem(f"context.{name}", f"未知变量：{name}（可用变量：{available()}）")
            for name in unknown
        )
    return replace(SAMPLE, **_coerce(values))


def _coerce(values: dict[str, Any]) -> dict[str, Any]:
    # JSON gives lists of dicts; templates read entries the same way either way.
    board = values.get("leaderboard")
    if isinstance(board, list | tuple):
        values["leaderboard"] = tuple(
            LeaderboardEntry(str(e["name"]), int(e["points"])) if isinstance(e, Mapping) else e
            for e in board
        )
    names = values.get("newcomer_names")
    if isinstance(names, list):
        values["newcomer_names"] = tuple(str(n) for n in names)
    return values


def zh_date(day: dt.date) -> str:
    return f"{day.month}月{day.day}日"


def zh_weekday(day: dt.date) -> str:
    return WEEKDAYS[day.weekday()]
