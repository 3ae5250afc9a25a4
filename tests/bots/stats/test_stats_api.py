"""Camp statistics through the admin API, against figures worked out by hand from seed.py."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from tests.admin.conftest import Admin, problems
from tests.bots.stats.seed import NOW, Camp, local, seed_camp
from tests.support import AppHarness

Sessions = async_sessionmaker[AsyncSession]


@pytest.fixture
async def camp(sessions: Sessions, clock: ManualClock) -> Camp:
    clock.set(NOW)
    return await seed_camp(sessions)


async def stats(admin: Admin, camp: Camp, **params: Any) -> dict[str, Any]:
    response = await admin.get(f"/stats/cohorts/{camp.cohort_id}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def column(days: list[dict[str, Any]], name: str) -> list[Any]:
    return [d[name] for d in days]


async def test_per_day_figures(admin: Admin, camp: Camp) -> None:
    body = await stats(admin, camp)
    assert (body["today"], body["latest_day"], body["total_days"]) == (3, 3, 7)
    days = body["days"]
    # Only days that have begun: 0..3 (day 4..6 omitted); day 3 is still running.
    assert column(days, "day") == [0, 1, 2, 3]
    assert column(days, "date") == ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"]
    assert column(days, "in_progress") == [False, False, False, True]
    # members: day 0 m1 m2 m3 m5 m6 (m4 joins on day 1) = 5; day 1 m6 gone (removed 03-03
    # 02:00, before day 1 began at 04:00), m4 in = 5; day 2 m5 still counts on the day it
    # left = 5; day 3 m1 m2 m3 m4 = 4.
    assert column(days, "members") == [5, 5, 5, 4]
    # left: m6 during day 0, m5 during day 2.
    assert column(days, "left") == [1, 0, 1, 0]
    # checked_in (on time or 补卡, members of that day only):
    # day 0 m1 m2 m6 = 3 (m3 请假; m4's 补卡 does not count, not a member yet)
    # day 1 m1 m2(补卡) m3 m4 = 4; day 2 m1 m4 = 2 (m6 had left); day 3 m1 = 1.
    assert column(days, "checked_in") == [3, 4, 2, 1]
    assert column(days, "on_leave") == [1, 0, 1, 0]
    # 3/5, 4/5, 2/5, 1/4
    assert column(days, "checkin_rate") == [0.6, 0.8, 0.4, 0.25]
    # homework: day 0 m1; day 1 m1 m2 m4; day 2 m4 (补交); day 3 none.
    assert column(days, "homework_submitted") == [1, 3, 1, 0]
    assert column(days, "homework_rate") == [0.2, 0.6, 0.2, 0.0]


async def test_summary_dropoff_streaks(admin: Admin, camp: Camp) -> None:
    body = await stats(admin, camp)
    summary = body["summary"]
    # member-days 5+5+5+4 = 19; check-ins 3+4+2+1 = 10 -> 10/19 = 0.52631… ; homework 5/19.
    assert summary["enrolled"] == 6
    assert summary["members"] == 4
    assert summary["checkin_rate"] == 0.5263
    assert summary["homework_rate"] == 0.2632
    # 全勤 over the completed days 0..2: m1 (0,1,2) and m4 (0 by 补卡, 1, 2); m2 missed day 2.
    assert summary["full_attendance"] == 2
    # 上岸: m1 (approved 喜报 and the tag: once), m3 (approved); m2's is pending, x1 is
    # another cohort's.
    assert summary["landed"] == 2

    # Retention from day 1's checkers {m1, m2, m3, m4}: day 2 m1 m4 = 2/4, day 3 m1 = 1/4.
    dropoff = body["dropoff"]
    assert (dropoff["base_day"], dropoff["base_checked_in"]) == (1, 4)
    assert dropoff["points"] == [
        {"day": 1, "members": 5, "retained": 4, "retention_rate": 1.0},
        {"day": 2, "members": 5, "retained": 2, "retention_rate": 0.5},
        {"day": 3, "members": 4, "retained": 1, "retention_rate": 0.25},
    ]
    # Current streaks as of day 3: m1 4, m4 3 (last day 2 = yesterday), m3 1 (day 2 was 请假:
    # paused), m2 0 (broken on day 2), m6 0 (broken), m5 0 (no score).
    # Best: m5 0; m2 2, m3 1, m6 1; m1 4, m4 3.
    streaks = {b["label"]: (b["current"], b["best"]) for b in body["streaks"]}
    assert streaks == {
        "0 天": (3, 1),
        "1–2 天": (1, 3),
        "3–6 天": (2, 2),
        "7–13 天": (0, 0),
        "14–20 天": (0, 0),
        "21 天及以上": (0, 0),
    }


async def test_other_base_day(admin: Admin, camp: Camp) -> None:
    # Day 0's checked-in members {m1, m2, m6} (m4's 补卡 is not a member's): day 1 m1 m2,
    # day 2 m1 (m6's entry comes after it left), day 3 m1.
    dropoff = (await stats(admin, camp, base_day=0))["dropoff"]
    assert [(p["day"], p["retained"]) for p in dropoff["points"]] == [
        (0, 3),
        (1, 2),
        (2, 1),
        (3, 1),
    ]
    assert dropoff["points"][1]["retention_rate"] == 0.6667


async def test_per_group_and_per_assistant(admin: Admin, camp: Camp) -> None:
    body = await stats(admin, camp)
    groups = {g["name"]: g for g in body["groups"]}
    assert set(groups) == {"一组", "二组"}  # g3 is not this cohort's
    # 一组: m1, m2 on days 0..3 (staff and the unknown person are not cohort members):
    # member-days 8; check-ins m1 4 + m2 2 = 6; homework m1 2 + m2 1 = 3; day 3: m1 of 2.
    assert groups["一组"] == {
        "group_id": camp.groups["g1"],
        "name": "一组",
        "channel": "robot",
        "members": 2,
        "checked_in_today": 1,
        "checkin_rate_today": 0.5,
        "member_days": 8,
        "checkins": 6,
        "checkin_rate": 0.75,
        "homework_submitted": 3,
        "homework_rate": 0.375,
    }
    # 二组: m1 days 0..3 (4), m3 days 0..3 (4), m4 days 1..3 (3), m5 days 0..2 (3) = 14;
    # check-ins m1 4 + m3 1 + m4 2 + m5 0 = 7; homework m1 2 + m4 2 = 4 -> 4/14 = 0.2857;
    # day 3: m1 m3 m4, only m1 checked in -> 1/3.
    g2 = groups["二组"]
    assert (g2["members"], g2["checked_in_today"], g2["checkin_rate_today"]) == (3, 1, 0.3333)
    assert (g2["member_days"], g2["checkins"], g2["checkin_rate"]) == (14, 7, 0.5)
    assert (g2["homework_submitted"], g2["homework_rate"]) == (4, 0.2857)

    assistants = {a["staff_userid"]: a for a in body["assistants"]}
    assert list(assistants) == [None, "li", "zhang"]
    # zhang: m1, m2 — the same as 一组.
    assert {k: v for k, v in assistants["zhang"].items() if k != "staff_userid"} == {
        k: v for k, v in groups["一组"].items() if k not in ("group_id", "name", "channel")
    }
    # li: m3 days 0..3 (4) + m4 days 1..3 (3) + m6 day 0 (1) = 8 member-days; check-ins
    # m3 1 + m4 2 + m6 1 = 4; homework m4 2; day 3 m3 m4, neither checked in.
    li = assistants["li"]
    assert (li["members"], li["checked_in_today"], li["checkin_rate_today"]) == (2, 0, 0.0)
    assert (li["member_days"], li["checkins"], li["checkin_rate"]) == (8, 4, 0.5)
    assert (li["homework_submitted"], li["homework_rate"]) == (2, 0.25)
    # No assistant: m5, days 0..2, nothing submitted, gone by day 3.
    none = assistants[None]
    assert (none["members"], none["member_days"], none["checkins"]) == (0, 3, 0)
    assert none["checkin_rate_today"] == 0.0


async def participation(admin: Admin, camp: Camp, **params: Any) -> dict[str, Any]:
    url = f"/stats/cohorts/{camp.cohort_id}/participation"
    response = await admin.get(url, params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_participation(admin: Admin, camp: Camp) -> None:
    # 一组 on day 1: m1, m2 and the unknown person (the staff account is not counted) = 3;
    # homework from m1 and m2 = 2 -> 2/3.
    one = await participation(admin, camp, day=1, kind="homework", group_id=camp.groups["g1"])
    assert (one["group_members"], one["participants"], one["participation_rate"]) == (
        3,
        2,
        0.6667,
    )
    # Both groups on day 1, each person once: m1 m2 unknown m3 m4 m5 = 6; homework m1 m2 m4.
    both = await participation(admin, camp, day=1, kind="homework")
    assert (both["group_members"], both["participants"], both["participation_rate"]) == (6, 3, 0.5)
    assert both["group_id"] is None
    # 二组 check-ins on day 2: m1 m3 m4 m5 (left at 10:00 that day) = 4; m1 m4 checked in.
    two = await participation(admin, camp, day=2, group_id=camp.groups["g2"])
    assert (two["kind"], two["group_members"], two["participants"]) == ("checkin", 4, 2)
    # 二组 on day 3: m5 has left -> m1 m3 m4; m1 checked in.
    later = await participation(admin, camp, day=3, kind="checkin", group_id=camp.groups["g2"])
    assert (later["group_members"], later["participants"], later["participation_rate"]) == (
        3,
        1,
        0.3333,
    )


async def test_csv_round_trip(admin: Admin, camp: Camp) -> None:
    days = (await stats(admin, camp))["days"]
    for path, params in [
        (f"/stats/cohorts/{camp.cohort_id}.csv", {}),
        (f"/stats/cohorts/{camp.cohort_id}", {"format": "csv"}),
    ]:
        response = await admin.get(path, params=params)
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        raw = response.content
        assert raw.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs for UTF-8
        rows = list(csv.reader(io.StringIO(raw.decode("utf-8-sig"))))
        assert rows[0] == [
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
        ]
        assert len(rows) == 1 + len(days)
        for row, day in zip(rows[1:], days, strict=True):
            assert int(row[0]) == day["day"]
            assert row[1] == day["date"]
            assert (int(row[2]), int(row[3]), int(row[5]), int(row[6])) == (
                day["members"],
                day["checked_in"],
                day["on_leave"],
                day["homework_submitted"],
            )
            assert float(row[4].rstrip("%")) / 100 == pytest.approx(day["checkin_rate"])
            assert float(row[7].rstrip("%")) / 100 == pytest.approx(day["homework_rate"])
            assert int(row[8]) == day["left"]
            assert row[9] == ("是" if day["in_progress"] else "否")
        assert rows[1][4] == "60.00%"


async def test_before_and_after_the_camp(admin: Admin, camp: Camp, clock: ManualClock) -> None:
    clock.set(local("03-02", "03:59"))  # still the night before day 0
    body = await stats(admin, camp)
    assert (body["today"], body["latest_day"], body["days"]) == (-1, None, [])
    assert (body["summary"]["members"], body["summary"]["checkin_rate"]) == (0, 0.0)
    assert [g["member_days"] for g in body["groups"]] == [0, 0]
    assert body["assistants"] == []
    assert body["dropoff"]["points"] == []
    csv_body = (await admin.get(f"/stats/cohorts/{camp.cohort_id}.csv")).content
    assert len(csv_body.decode("utf-8-sig").strip().splitlines()) == 1  # headers only

    clock.set(local("03-02", "04:00"))  # day 0 begins
    body = await stats(admin, camp)
    assert column(body["days"], "day") == [0]
    assert body["days"][0]["in_progress"]

    clock.set(NOW + timedelta(days=30))  # long after the end: every day, none running
    body = await stats(admin, camp)
    assert body["today"] == 33
    assert column(body["days"], "day") == list(range(8))  # 开营 day 0, then days 1..7
    assert not any(column(body["days"], "in_progress"))
    # Days 4..7 have members but no entries.
    assert column(body["days"], "checked_in")[4:] == [0, 0, 0, 0]
    assert column(body["days"], "members")[4:] == [4, 4, 4, 4]


async def test_refusals(admin: Admin, camp: Camp, harness: AppHarness) -> None:
    cid = camp.cohort_id
    for path in ["/stats/cohorts/999", "/stats/cohorts/999.csv", "/stats/cohorts/999/chart.svg"]:
        response = await admin.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"] == "训练营期次 999 不存在。"
    missing = await admin.get("/stats/cohorts/999/participation", params={"day": 1})
    assert missing.status_code == 404

    unauthenticated = await harness.client.get(f"/admin/api/stats/cohorts/{cid}")
    assert unauthenticated.status_code == 401
    wrong = await harness.client.get(
        f"/admin/api/stats/cohorts/{cid}.csv", headers={"Authorization": "Bearer nope"}
    )
    assert wrong.status_code == 401

    assert problems(await admin.get(f"/stats/cohorts/{cid}", params={"format": "xml"})) == {
        "format": "取值应为以下之一：json、csv"
    }
    assert "base_day" in problems(await admin.get(f"/stats/cohorts/{cid}?base_day=-1"))
    assert problems(await admin.get(f"/stats/cohorts/{cid}?base_day=8")) == {
        "base_day": "这一期只有第 0–7 天。"
    }
    assert "cohort_id" in problems(await admin.get("/stats/cohorts/abc"))
    assert "cohort_id" in problems(await admin.get("/stats/cohorts/abc.csv"))
    assert "cohort_id" in problems(await admin.get("/stats/cohorts/0/chart.svg"))

    url = f"/stats/cohorts/{cid}/participation"
    assert problems(await admin.get(url)) == {"day": "必填"}
    assert "kind" in problems(await admin.get(url, params={"day": 1, "kind": "quiz"}))
    assert problems(await admin.get(url, params={"day": 8})) == {"day": "这一期只有第 0–7 天。"}
    assert "group_id" in problems(await admin.get(url, params={"day": 1, "group_id": 0}))
    other_group = {"day": 1, "group_id": camp.groups["g3"]}
    assert problems(await admin.get(url, params=other_group)) == {
        "group_id": f"群 {camp.groups['g3']} 不属于这一期。"
    }
