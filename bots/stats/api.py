"""`/admin/api/stats`: per-day camp statistics, CSV and a chart.

    GET /stats/cohorts/{id}                 everything (JSON); `?format=csv` = the CSV below
    GET /stats/cohorts/{id}.csv             the per-day table, Chinese headers, UTF-8 with BOM
    GET /stats/cohorts/{id}/chart.svg       the daily check-in rate as a bar chart
    GET /stats/cohorts/{id}/participation   活动参与率 of one event (a camp day and a kind)

Definitions of every figure: `bots.stats.service`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import Query, Response
from pydantic import BaseModel, Field

from app.admin.models import Cohort
from app.api.admin.deps import AdminSessionDep, admin_resource_router
from app.api.admin.fields import INT32_MAX, IdPath
from app.api.admin.schemas import ERRORS_404, ERRORS_422
from app.deps import RuntimeDep
from bots.checkin.models import EntryKind
from bots.sop import service as sop_service
from bots.stats import service
from bots.stats.chart import ChartPoint, checkin_rate_svg
from bots.stats.sop_figures import SopCompletionOut, sop_out

router = admin_resource_router("/stats", "stats")
MAX_DAY = 366

# Camp days run 0 (开营) .. `days`, and `days` may be 366 (app.api.admin.fields.Days).
DayQuery = Annotated[int, Query(ge=0, le=MAX_DAY, description="训练营第几天（第 0 天 = 开营）")]
CSV_HEADERS = (
    "天",
    "日期",
    "学员数",
    "已打卡",
    "打卡率",
    "请假",
    "作业提交",
    "作业提交率",
    "当天离开",
    "进行中",
)


class DayOut(BaseModel):
    day: int
    date: date
    in_progress: bool = Field(description="这一天还没过完")
    members: int = Field(description="这一天的在营学员数（已入营、未在这天之前离开）")
    checked_in: int = Field(description="按时打卡或补卡的学员数")
    checkin_rate: float
    on_leave: int = Field(description="请假的学员数")
    homework_submitted: int
    homework_rate: float
    left: int = Field(description="这一天离开（删好友/被删）的学员数")


class SummaryOut(BaseModel):
    enrolled: int = Field(description="报名入营的学员总数（含已离开的）")
    members: int = Field(description="最近一天的在营学员数")
    checkin_rate: float = Field(description="整体打卡率：各天已打卡之和 ÷ 各天学员数之和")
    homework_rate: float
    full_attendance: int = Field(description="全勤：已过完的每一天都打了卡的学员数")
    landed: int = Field(description="上岸人数")
    landed_source: str = Field(description="上岸人数的来源")


class RetentionOut(BaseModel):
    day: int
    members: int = Field(description="这一天的在营学员数（流失曲线）")
    retained: int = Field(description="基准日打卡的学员中，这一天也打卡的人数")
    retention_rate: float


class DropoffOut(BaseModel):
    base_day: int
    base_checked_in: int
    points: list[RetentionOut]


class StreakBucketOut(BaseModel):
    label: str
    lowest: int
    highest: int | None
    current: int = Field(description="当前连续打卡天数在此区间的学员数")
    best: int = Field(description="最长连续打卡天数在此区间的学员数")


class SliceOut(BaseModel):
    members: int
    checked_in_today: int
    checkin_rate_today: float
    member_days: int
    checkins: int
    checkin_rate: float
    homework_submitted: int
    homework_rate: float


class GroupOut(SliceOut):
    group_id: int
    name: str | None
    channel: str


class AssistantOut(SliceOut):
    staff_userid: str | None = Field(description="学员添加的员工（助教）；null = 未分配")


class CohortStatsOut(BaseModel):
    cohort_id: int
    cohort_name: str
    camp: str
    start_date: date
    timezone: str
    total_days: int
    today: int = Field(description="现在是第几天；开营前为负数，结营后 > total_days")
    latest_day: int | None = Field(description="最近一个已开始的训练营日；未开营为 null")
    generated_at: datetime
    days: list[DayOut] = Field(description="已开始的每一天（之后的日子不列出）")
    summary: SummaryOut
    dropoff: DropoffOut
    streaks: list[StreakBucketOut]
    groups: list[GroupOut]
    assistants: list[AssistantOut]
    sop: list[SopCompletionOut] = Field(
        default_factory=list,
        description="群SOP 完成情况：每位负责发送的员工按时、迟发、跳过的条数",
    )


class ParticipationOut(BaseModel):
    cohort_id: int
    day: int
    kind: Literal["checkin", "homework"]
    group_id: int | None
    group_members: int = Field(description="这一天在群里的人数（不含员工）")
    participants: int = Field(description="其中提交了的人数")
    participation_rate: float


def _slice(figures: service.SliceStats) -> dict[str, Any]:
    return {
        "members": figures.members,
        "checked_in_today": figures.checked_in_today,
        "checkin_rate_today": figures.checkin_rate_today,
        "member_days": figures.member_days,
        "checkins": figures.checkins,
        "checkin_rate": figures.checkin_rate,
        "homework_submitted": figures.homework_submitted,
        "homework_rate": figures.homework_rate,
    }


def _day(d: service.DayStats) -> DayOut:
    return DayOut(
        day=d.day,
        date=d.date,
        in_progress=d.in_progress,
        members=d.members,
        checked_in=d.checked_in,
        checkin_rate=d.checkin_rate,
        on_leave=d.on_leave,
        homework_submitted=d.homework_submitted,
        homework_rate=d.homework_rate,
        left=d.left,
    )


def summary_of(stats: service.CohortStats | service.DailyStats) -> SummaryOut:
    member_days = sum(d.members for d in stats.days)
    return SummaryOut(
        enrolled=stats.enrolled,
        members=stats.latest.members if stats.latest else 0,
        checkin_rate=service.rate(sum(d.checked_in for d in stats.days), member_days),
        homework_rate=service.rate(sum(d.homework_submitted for d in stats.days), member_days),
        full_attendance=stats.full_attendance,
        landed=stats.landed,
        landed_source=f"已批准的喜报（本期）或学员标签「{service.LANDED_TAG}」",
    )


def _dropoff(stats: service.CohortStats) -> DropoffOut:
    members = {d.day: d.members for d in stats.days}
    points = [
        RetentionOut(
            day=p.day,
            members=members.get(p.day, 0),
            retained=p.retained,
            retention_rate=p.retention_rate,
        )
        for p in stats.dropoff.points
    ]
    return DropoffOut(
        base_day=stats.dropoff.base_day,
        base_checked_in=stats.dropoff.base_checked_in,
        points=points,
    )


def _out(stats: service.CohortStats, now: datetime) -> CohortStatsOut:
    cohort = stats.calendar.cohort
    return CohortStatsOut(
        cohort_id=cohort.id,
        cohort_name=cohort.name,
        camp=cohort.camp,
        start_date=cohort.start_date,
        timezone=cohort.timezone,
        total_days=cohort.days,
        today=stats.calendar.today,
        latest_day=stats.calendar.latest_day,
        generated_at=now,
        days=[_day(d) for d in stats.days],
        summary=summary_of(stats),
        dropoff=_dropoff(stats),
        streaks=[
            StreakBucketOut(
                label=b.label, lowest=b.lowest, highest=b.highest, current=b.current, best=b.best
            )
            for b in stats.streaks
        ],
        groups=[
            GroupOut(group_id=g.group_id, name=g.name, channel=g.channel, **_slice(g.figures))
            for g in stats.groups
        ],
        assistants=[
            AssistantOut(staff_userid=a.key or None, **_slice(a)) for a in stats.assistants
        ],
    )


def _percent(value: float) -> str:
    return f"{value * 100:.2f}%"


def csv_text(days: Sequence[service.DayStats]) -> str:
    """The per-day table; Excel reads UTF-8 only with the BOM in front."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_HEADERS)
    for d in days:
        writer.writerow(
            [
                d.day,
                d.date.isoformat(),
                d.members,
                d.checked_in,
                _percent(d.checkin_rate),
                d.on_leave,
                d.homework_submitted,
                _percent(d.homework_rate),
                d.left,
                "是" if d.in_progress else "否",
            ]
        )
    return "\ufeff" + out.getvalue()


def csv_response(cohort: Cohort, days: Sequence[service.DayStats]) -> Response:
    """The day table as a download (the API's and the console's CSV)."""
    name = quote(f"{cohort.name}-统计.csv")
    disposition = f"attachment; filename=\"cohort-{cohort.id}-stats.csv\"; filename*=UTF-8''{name}"
    return Response(
        csv_text(days).encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": disposition},
    )


def chart_response(cohort: Cohort, days: Sequence[service.DayStats]) -> Response:
    """The daily check-in rate as an SVG bar chart (the API's and the console's)."""
    svg = checkin_rate_svg(
        title=f"{cohort.name} 每日打卡率",
        total_days=cohort.days,
        points=[ChartPoint(d.day, d.checkin_rate, d.in_progress) for d in days],
    )
    return Response(svg.encode("utf-8"), media_type="image/svg+xml; charset=utf-8")


async def _stats(
    session: AdminSessionDep, runtime: RuntimeDep, cohort_id: int, base_day: int | None = None
) -> service.CohortStats:
    return await service.cohort_stats(
        session=session, cohort_id=cohort_id, now=runtime.clock.now(), base_day=base_day
    )


@router.get(
    "/cohorts/{cohort_id}.csv",
    summary="期次统计（CSV）",
    description=(
        "每天一行：学员数、已打卡、打卡率、请假、作业提交、作业提交率。"
        "UTF-8 带 BOM，Excel 可直接打开。"
    ),
    response_class=Response,
    responses=ERRORS_404 | ERRORS_422 | {200: {"content": {"text/csv": {}}}},
)
async def cohort_stats_csv(
    cohort_id: IdPath, session: AdminSessionDep, runtime: RuntimeDep
) -> Response:
    calendar, days = await service.camp_days(
        session=session, cohort_id=cohort_id, now=runtime.clock.now()
    )
    return csv_response(calendar.cohort, days)


@router.get(
    "/cohorts/{cohort_id}/chart.svg",
    summary="每日打卡率图（SVG）",
    response_class=Response,
    responses=ERRORS_404 | ERRORS_422 | {200: {"content": {"image/svg+xml": {}}}},
)
async def cohort_chart(
    cohort_id: IdPath, session: AdminSessionDep, runtime: RuntimeDep
) -> Response:
    calendar, days = await service.camp_days(
        session=session, cohort_id=cohort_id, now=runtime.clock.now()
    )
    return chart_response(calendar.cohort, days)


@router.get(
    "/cohorts/{cohort_id}/participation",
    summary="活动参与率",
    description=(
        "一次活动 = 某一天的打卡或作业。参与率 = 这一天在群里且提交了的人数 ÷ 这一天在群里的人数"
        "（不含员工）。不给 `group_id` 时合计这一期的所有群（同一人只算一次）。"
    ),
    responses=ERRORS_404 | ERRORS_422,
)
async def event_participation(
    cohort_id: IdPath,
    session: AdminSessionDep,
    runtime: RuntimeDep,
    day: DayQuery,
    kind: Annotated[Literal["checkin", "homework"], Query(description="打卡或作业")] = "checkin",
    group_id: Annotated[int | None, Query(ge=1, le=INT32_MAX, description="群 id")] = None,
) -> ParticipationOut:
    result = await service.participation(
        session=session,
        cohort_id=cohort_id,
        day=day,
        kind=EntryKind(kind),
        group_id=group_id,
        now=runtime.clock.now(),
    )
    return ParticipationOut(
        cohort_id=result.cohort_id,
        day=result.day,
        kind=kind,
        group_id=result.group_id,
        group_members=result.group_members,
        participants=result.participants,
        participation_rate=result.participation_rate,
    )


@router.get(
    "/cohorts/{cohort_id}",
    summary="期次统计",
    description=(
        "已开始的每一天：学员数、已打卡、打卡率、作业提交率；流失曲线、连续打卡分布、"
        "各群与各助教、全勤与上岸人数。`format=csv` 下载每日表格。"
    ),
    response_model=CohortStatsOut,
    responses=ERRORS_404 | ERRORS_422,
)
async def cohort_stats(
    cohort_id: IdPath,
    session: AdminSessionDep,
    runtime: RuntimeDep,
    format: Annotated[Literal["json", "csv"], Query(description="json 或 csv")] = "json",
    base_day: Annotated[
        int | None, Query(ge=0, le=MAX_DAY, description="留存的基准日（默认第 1 天）")
    ] = None,
) -> CohortStatsOut | Response:
    stats = await _stats(session, runtime, cohort_id, base_day)
    if format == "csv":
        return csv_response(stats.calendar.cohort, stats.days)
    out = _out(stats, runtime.clock.now())
    out.sop = sop_out(await sop_service.completion_by_staff(session=session, cohort_id=cohort_id))
    return out
