"""The daily check-in rate chart: valid XML, one bar per observed day at the right height."""

from __future__ import annotations

from typing import Any

import pytest
from defusedxml import ElementTree
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from bots.stats.chart import LEFT, PLOT_H, PLOT_W, TOP, ChartPoint, checkin_rate_svg
from tests.admin.conftest import Admin
from tests.bots.stats.seed import NOW, local, seed_camp

SVG = "{http://www.w3.org/2000/svg}"


def bars(svg: bytes | str) -> list[Any]:
    root = ElementTree.fromstring(svg.encode("utf-8") if isinstance(svg, str) else svg)
    assert root.tag == f"{SVG}svg"
    return [rect for rect in root.iter(f"{SVG}rect") if rect.get("class") == "bar"]


def texts(svg: bytes | str) -> list[str]:
    root = ElementTree.fromstring(svg.encode("utf-8") if isinstance(svg, str) else svg)
    return [t.text or "" for t in root.iter(f"{SVG}text")]


async def test_chart_of_the_seeded_camp(
    admin: Admin, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    clock.set(NOW)
    camp = await seed_camp(sessions)
    response = await admin.get(f"/stats/cohorts/{camp.cohort_id}/chart.svg")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("image/svg+xml")
    found = bars(response.content)
    # Days 0..3 at 60%, 80%, 40%, 25% (see test_stats_api): height = rate × plot height,
    # every bar standing on the x axis.
    assert [int(b.get("data-day")) for b in found] == [0, 1, 2, 3]
    for bar, expected in zip(found, [0.6, 0.8, 0.4, 0.25], strict=True):
        assert float(bar.get("data-rate")) == expected
        assert float(bar.get("height")) == pytest.approx(expected * PLOT_H, abs=0.01)
        assert float(bar.get("y")) + float(bar.get("height")) == pytest.approx(TOP + PLOT_H)
    # Bars are left to right, equally spaced.
    xs = [float(b.get("x")) for b in found]
    assert xs == sorted(xs)
    assert xs[2] - xs[1] == pytest.approx(xs[1] - xs[0], abs=0.02)
    labels = texts(response.content)
    assert "写作营 第 3 期 每日打卡率" in labels
    assert {"60.0%", "80.0%", "40.0%", "25.0%"} <= set(labels)
    assert {"第0天", "第6天", "0%", "50%", "100%", "打卡率"} <= set(labels)


async def test_chart_before_the_camp(
    admin: Admin, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    clock.set(local("03-01", "12:00"))
    camp = await seed_camp(sessions)
    response = await admin.get(f"/stats/cohorts/{camp.cohort_id}/chart.svg")
    assert response.status_code == 200
    assert bars(response.content) == []
    assert "尚未开营，暂无数据" in texts(response.content)


def test_names_are_escaped_and_rates_clamped() -> None:
    svg = checkin_rate_svg(
        title='<营> & "特训"',
        total_days=40,
        points=[ChartPoint(0, 1.0), ChartPoint(1, 0.0), ChartPoint(39, 0.5, in_progress=True)],
    )
    found = bars(svg)  # parses: the title's markup characters were escaped
    assert [float(b.get("height")) for b in found] == [PLOT_H, 0.0, PLOT_H / 2]
    assert '<营> & "特训"' in texts(svg)
    # Days 0..40: labels every 2nd day so they do not overlap, and today's (39) with its
    # neighbours giving way; no value over each bar.
    labels = texts(svg)
    assert {"第0天", "第36天", "第39天"} <= set(labels)
    assert not {"第37天", "第38天", "第40天"} & set(labels)
    assert "50.0%" not in labels


def labels_at(svg: bytes | str) -> dict[str, float]:
    root = ElementTree.fromstring(svg.encode("utf-8") if isinstance(svg, str) else svg)
    return {t.text or "": float(t.get("x")) for t in root.iter(f"{SVG}text")}


def assert_inside_the_plot(bar: Any, svg: bytes | str) -> None:
    root = ElementTree.fromstring(svg.encode("utf-8") if isinstance(svg, str) else svg)
    _, _, view_w, view_h = (float(v) for v in root.get("viewBox").split())
    x, width = float(bar.get("x")), float(bar.get("width"))
    y, height = float(bar.get("y")), float(bar.get("height"))
    assert LEFT <= x, x
    assert x + width <= LEFT + PLOT_W <= view_w, (x, width)
    assert TOP <= y
    assert y + height <= view_h


async def test_the_last_camp_day_in_progress_is_drawn_inside_with_its_label(
    admin: Admin, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    clock.set(local("03-09", "12:00"))  # day 7 of a 7-day camp (days 0..7): the last, today
    camp = await seed_camp(sessions)

    response = await admin.get(f"/stats/cohorts/{camp.cohort_id}/chart.svg")

    assert response.status_code == 200
    found = bars(response.content)
    assert [int(b.get("data-day")) for b in found] == list(range(8))
    for bar in found:
        assert_inside_the_plot(bar, response.content)
    today = found[-1]
    assert "进行中" in (today.find(f"{SVG}title").text or "")
    labels = labels_at(response.content)
    assert "第7天" in labels
    centre = float(today.get("x")) + float(today.get("width")) / 2
    assert labels["第7天"] == pytest.approx(centre, abs=0.01)


@pytest.mark.parametrize("total_days", [1, 7, 21, 40, 366])
def test_every_day_of_any_camp_fits_and_today_is_labelled(total_days: int) -> None:
    points = [ChartPoint(day, 0.5, in_progress=day == total_days) for day in range(total_days + 1)]
    svg = checkin_rate_svg(title="营", total_days=total_days, points=points)
    found = bars(svg)
    assert len(found) == total_days + 1
    for bar in found:
        assert_inside_the_plot(bar, svg)
    assert f"第{total_days}天" in texts(svg)
