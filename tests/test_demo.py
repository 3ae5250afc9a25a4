"""`campbot sandbox demo` plays to the end, and what it prints is what happened."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from app.cli.demo import (
    CAMP_DAYS,
    INTERNAL_STUDENT,
    LATE_NOTICE,
    STUDENTS,
    run_demo,
    where_to_look,
)
from app.clock import SystemClock
from app.db import create_engine
from app.main import create_app
from app.settings import Settings
from tests.console.support import Console


def expected_checked_in(day: int) -> int:
    """The demo's script: external students by their day sets, the internal one all but day 4."""
    external = sum(day in days for _, days in STUDENTS.values())
    return external + (1 if 1 <= day != 4 else 0)


async def test_the_demo_camp_runs_to_the_end(tmp_path: Path) -> None:
    printed: list[str] = []
    record = tmp_path / "wecom.json"
    url = f"sqlite+aiosqlite:///{tmp_path / 'demo.db'}"
    report = await run_demo(database_url=url, out=printed.append, record=record)
    assert report.welcomed == len(STUDENTS)
    assert report.questions_answered == 1
    assert report.xibao_broadcast is not None
    by_day = {row["day"]: row for row in report.stats_days}
    for day in range(1, CAMP_DAYS + 1):
        assert by_day[day]["members"] == len(STUDENTS) + 1, by_day[day]
        assert by_day[day]["checked_in"] == expected_checked_in(day), by_day[day]
    # Each evening's reminder reached exactly those who had not checked in.
    everyone = {name for name, _ in STUDENTS.values()} | {INTERNAL_STUDENT[1]}
    for day in range(1, CAMP_DAYS + 1):
        checked = {name for name, days in STUDENTS.values() if day in days}
        checked |= {INTERNAL_STUDENT[1]} if day != 4 else set()
        assert report.reminded[day] == everyone - checked, day
    # The customer group's rhythm went through 群SOP: a handful of 群发 tasks for the whole
    # camp (开营, 喜报, 每周小结, 结营; one merged reminder per staff member and evening),
    # where one task per push and per student used to be 77.
    tasks = sum(report.mass_tasks.values())
    assert 4 <= tasks <= 14, report.mass_tasks
    assert report.mass_tasks["customer_single"] <= CAMP_DAYS + 1  # one per evening at most
    assert report.xibao_channel == "customer_group"  # the 喜报 still spent as a 群发
    assert report.sop_items >= 40
    assert report.posted["lisi"] >= 25  # the assistant posted the group's items…
    assert report.posted["zhangsan"] >= 20  # …the owner the students' 1:1 ones
    assert sum(report.posted.values()) + report.skipped == report.sop_items
    [lisi] = [f for f in report.sop_figures if f["staff_userid"] == "lisi"]
    assert (lisi["skipped"], lisi["on_time"]) == (1, report.posted["lisi"])
    # The sandbox recorded what WeCom received: welcomes, robot posts, the 喜报 poster, and
    # what staff posted from the chat toolbar.
    assert report.deliveries["welcome"] == len(STUDENTS)
    assert report.deliveries["chat_tool"] == sum(report.posted.values())
    assert report.deliveries["webhook"] > CAMP_DAYS
    sent = json.loads(record.read_text("utf-8"))
    assert len(sent) == sum(report.deliveries.values())
    robot_images = [
        d for d in sent if d["channel"] == "webhook" and d["body"].get("msgtype") == "image"
    ]
    assert robot_images, "the 喜报 poster reached the robot group"
    # The operator's mid-camp edit reached the next morning's push, and the review its student.
    texts = [json.dumps(d["body"], ensure_ascii=False) for d in sent]
    assert any(LATE_NOTICE in t and "第 3 天" in t for t in texts)
    to_xiaolin = [
        json.dumps(d["body"], ensure_ascii=False) for d in sent if d["target"] == "wmDemoXiaolin"
    ]
    assert any("95" in t and "思路清晰" in t for t in to_xiaolin)
    # What it printed is what happened.
    assert printed == report.lines
    assert any(f"{len(STUDENTS)} 条欢迎语" in line for line in printed)
    assert any(INTERNAL_STUDENT[1] in line and "自动回复 1 条" in line for line in printed)
    assert any("喜报" in line for line in printed)
    assert any("入群欢迎语" in line and "共 1 条" in line for line in printed)
    taps = [line for line in printed if "聊天工具栏，点「发送」" in line]
    assert len(taps) == 2
    assert "第 3 天 今日任务" in taps[0]
    assert any(line.startswith("群发任务") and f"共 {tasks} 个" in line for line in printed)
    # Its last lines print the console's address and a login that signs in.
    last = where_to_look(report, url, record).splitlines()[-1]
    found = re.fullmatch(r"  运营后台：http://localhost:8000/ 账号 (\S+)，密码 (\S+)", last)
    assert found is not None, last
    cohorts = await _console_signs_in(url, found.group(1), found.group(2))
    assert "跨境电商 7 天实战营" in cohorts


async def _console_signs_in(database_url: str, username: str, password: str) -> str:
    engine = create_engine(database_url)
    try:
        settings = Settings(WECOM_CORP_ID="wwdemo", _env_file=None)  # type: ignore[call-arg]
        app = create_app(
            settings=settings,
            clock=SystemClock(),
            engine=engine,
            sweeper=False,
            scheduler=False,
            sender=False,
            wecom_transport=httpx.MockTransport(lambda request: httpx.Response(500)),
        )
        async with app.router.lifespan_context(app), Console(app) as browser:
            await browser.sign_in(username, password)
            return (await browser.get("/console/cohorts")).text
    finally:
        await engine.dispose()
