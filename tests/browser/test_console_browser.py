"""The operators' console in a real browser: Debian's headless Chromium (Playwright) against
one real uvicorn process on its sandbox first run, at desktop (1280 px) and phone (390 px)
sizes; a screenshot of each scenario is kept in test-artifacts/console_*.png.

Each scenario sets up what it is not about through the admin API and WeCom's side through
the sandbox's control routes, then does its work in the browser as an operator would.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.browser.console_server import DESKTOP, PHONE, Served, served, shot
from tests.browser.stage import camp_today, launch, png_file

SIZES = {"desktop": DESKTOP, "phone": PHONE}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    with served(tmp_path_factory.mktemp("console")) as running:
        yield running


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium: Browser) -> Iterator[Callable[[dict[str, int]], Page]]:
    contexts = []

    def make(viewport: dict[str, int]) -> Page:
        context = chromium.new_context(viewport=viewport, locale="zh-CN")  # type: ignore[arg-type]
        contexts.append(context)
        page = context.new_page()
        page.on("dialog", lambda dialog: dialog.accept())  # the 确定吗？ confirmations
        return page

    yield make
    for context in contexts:
        context.close()


def sign_in(page: Page, server: Served, username: str = "", password: str = "") -> None:
    page.goto(server.base + "/")
    expect(page).to_have_url(re.compile(r"/console/login"))
    page.get_by_label("用户名").fill(username or server.username)
    page.get_by_label("密码").fill(password or server.password)
    page.get_by_role("button", name="登录").click()
    expect(page.locator("h1")).to_have_text("今日")


def make_camp(server: Served, state: str, robots: dict[str, bool]) -> int:
    """A cohort starting today, with a robot group per key (registered in the sandbox when
    True: its messages arrive; False: WeCom answers 93000)."""
    cohort = server.admin(
        "POST", "/cohorts",
        json={"name": f"{state} 期", "camp": "跨境电商实战营", "start_date": str(camp_today()),
              "days": 7, "channel_state": state},
    )  # fmt: skip
    assert cohort.status_code == 201, cohort.text
    for key, registered in robots.items():
        if registered:
            assert server.sandbox("/robots", {"key": key}).status_code < 300
        made = server.admin(
            "POST", "/groups",
            json={"cohort_id": cohort.json()["id"], "name": f"{key} 群", "channel": "robot",
                  "robot_key": key},
        )  # fmt: skip
        assert made.status_code == 201, made.text
    return int(cohort.json()["id"])


def make_student(server: Served, cohort: int, name: str) -> dict[str, Any]:
    made = server.admin(
        "POST", "/members",
        json={"external_userid": f"wm{abs(hash((cohort, name)))}", "name": name,
              "cohort_id": cohort, "staff_userid": "lisi"},
    )  # fmt: skip
    assert made.status_code == 201, made.text
    return dict(made.json())


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_sign_in(server: Served, open_page: Callable[[dict[str, int]], Page], size: str) -> None:
    page = open_page(SIZES[size])
    page.goto(server.base + "/console/cohorts")
    page.get_by_label("用户名").fill(server.username)
    page.get_by_label("密码").fill("wrong-password")
    page.get_by_role("button", name="登录").click()
    expect(page.locator("#login-error")).to_have_text("用户名或密码不正确。")
    page.get_by_label("密码").fill(server.password)
    page.get_by_role("button", name="登录").click()
    expect(page).to_have_url(re.compile(r"/console/cohorts$"))  # back where it was going
    expect(page.locator("#who")).to_contain_text("演示管理员（管理员）")
    if size == "phone":
        nav = page.locator("nav.nav")
        expect(nav).to_be_hidden()
        page.locator("label.menu-button").click()
        expect(nav).to_be_visible()
    shot(page, f"sign_in_{size}")


def test_create_a_cohort_with_a_robot_group(
    server: Served, open_page: Callable[[dict[str, int]], Page]
) -> None:
    page = open_page(DESKTOP)
    sign_in(page, server)
    page.get_by_role("link", name="期次", exact=True).click()
    page.get_by_role("link", name="新建期次").click()
    page.get_by_label("期次名称").fill("第 9 期")
    page.get_by_label("训练营", exact=True).fill("跨境电商 7 天实战营")
    page.get_by_label("开营日（第 0 天）").fill(str(camp_today()))
    page.get_by_label("上课天数").fill("7")
    page.get_by_label("渠道活码 State").fill("browser-camp9")
    page.get_by_role("button", name="创建").click()
    page.get_by_label("群名称").fill("9期1群")
    page.get_by_label("发送渠道").select_option("robot")
    webhook = "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=browser-robot-9"
    page.get_by_label("群机器人 webhook 地址（群机器人）").fill(webhook)
    page.get_by_role("button", name="添加").click()
    expect(page.locator("#groups")).to_contain_text("9期1群")
    expect(page.locator("#groups")).to_contain_text("群机器人")
    shot(page, "cohort_with_robot_group_desktop")
    groups = server.admin("GET", "/groups").json()["items"]
    assert [g["robot_key"] for g in groups if g["name"] == "9期1群"] == ["browser-robot-9"]


def test_edit_a_script_and_watch_the_preview_change(
    server: Served, open_page: Callable[[dict[str, int]], Page]
) -> None:
    cohort = make_camp(server, "browser-script", {})
    make_student(server, cohort, "大橙子")
    page = open_page(DESKTOP)
    sign_in(page, server)
    page.goto(server.base + "/console/scripts/day1_todolist")
    body = page.get_by_label("正文（模板）")
    body.fill("今天是第 {{ day }} 天，加油！")
    expect(page.locator("#preview-text")).to_have_text("今天是第 3 天，加油！")
    body.fill("")
    page.locator("#palette button", has_text="student_name").click()  # the palette inserts it
    body.press("End")
    body.type("，今天先把选品表做完。")
    page.get_by_label("按学员（昵称或 id）").fill("大橙子")
    expect(page.locator("#preview-text")).to_have_text("大橙子，今天先把选品表做完。")
    expect(page.locator("#channel-checks")).to_contain_text("群机器人")
    body.fill("{{ student_name")
    expect(page.locator("#preview-problems")).to_contain_text("第 1 行语法错误")
    body.fill("{{ student_name }}，今天先把选品表做完。")
    page.get_by_label("这次修改的说明").fill("浏览器里改的")
    page.get_by_role("button", name="保存为新版本").click()
    expect(page.locator("#saved")).to_be_visible()
    shot(page, "script_preview_desktop")


def test_add_a_schedule_and_find_it_in_the_calendar(
    server: Served, open_page: Callable[[dict[str, int]], Page]
) -> None:
    cohort = make_camp(server, "browser-schedule", {"browser-robot-s": True})
    page = open_page(DESKTOP)
    sign_in(page, server)
    page.goto(f"{server.base}/console/schedules?cohort_id={cohort}")
    form = page.locator("#schedule-form")
    form.get_by_label("话术").select_option("day2_todolist")
    form.get_by_label("触发方式").select_option("cohort_day")
    form.get_by_label("第几天").fill("1")
    form.get_by_label("几点").fill("08:30")
    form.get_by_label("目标").select_option("cohort_groups")
    form.get_by_role("button", name="添加").click()
    day1 = page.locator("#timetable tr", has_text="第 1 天")
    expect(day1).to_contain_text("08:30")
    expect(day1).to_contain_text("第 2 天 今日任务")
    page.get_by_role("link", name="未来 48 小时的发送日历").click()
    row = page.locator("#calendar tr", has_text="day2_todolist").filter(has_text="08:30")
    expect(row).to_contain_text("browser-robot-s 群")
    expect(row).to_contain_text("群机器人")
    shot(page, "schedule_calendar_desktop")


def test_an_assistant_reviews_a_homework_with_an_image_on_a_phone(
    server: Served, open_page: Callable[[dict[str, int]], Page], tmp_path: Path
) -> None:
    cohort = make_camp(server, "browser-review", {})
    student = make_student(server, cohort, "小林")
    phone = open_page(PHONE)
    phone.goto(student["h5_url"])
    homework = phone.locator("#homework form.entry-form")
    homework.locator("textarea[name=text]").fill("第 0 天作业：选品表")
    homework.locator("input[type=file]").set_input_files(str(png_file(tmp_path / "hw.png")))
    homework.locator("button[type=submit]").click()
    expect(phone.locator("#flash")).to_have_text("作业已提交")
    admin = open_page(DESKTOP)
    sign_in(admin, server)
    admin.goto(server.base + "/console/accounts")
    new = admin.locator("#new-account")
    new.get_by_label("用户名").fill("lisi")
    new.get_by_label("称呼").fill("李助教")
    new.get_by_label("角色").select_option("assistant")
    new.get_by_label("初始密码").fill("lisi-password-1")
    new.get_by_label("企业微信 userid（助教）").fill("lisi")
    new.get_by_label(f"{'跨境电商实战营'} · browser-review 期").check()
    new.get_by_role("button", name="创建账号").click()
    expect(admin.locator("#accounts")).to_contain_text("李助教")
    assistant = open_page(PHONE)
    sign_in(assistant, server, "lisi", "lisi-password-1")
    assistant.locator("label.menu-button").click()
    assistant.get_by_role("link", name="打卡与作业").click()
    card = assistant.locator("article.review", has_text="小林")
    expect(card).to_contain_text("第 0 天作业：选品表")
    card.locator(".thumbs a").first.click()
    zoomed = assistant.locator(".zoom:target img")
    expect(zoomed).to_be_visible()
    assert zoomed.evaluate("img => img.complete && img.naturalWidth") == 320
    shot(assistant, "homework_zoom_phone")
    assistant.locator(".zoom:target .close").click()
    card.get_by_label("分数（0–100）").fill("92")
    card.get_by_label("点评（发给学员）").fill("思路清晰")
    card.get_by_role("button", name="保存批改").click()
    saved = assistant.locator("article.review", has_text="小林")
    expect(saved.locator(".review-done")).to_contain_text("92 分")
    expect(saved.locator(".review-done")).to_contain_text("已保存")
    shot(assistant, "homework_reviewed_phone")
    phone.reload()
    expect(phone.locator("#review")).to_contain_text("92 分")


def wait_for_text(page: Page, locator: str, text: str, timeout_s: float = 40) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in (
        page.locator(locator).inner_text() if page.locator(locator).count() else ""
    ):
        assert time.monotonic() < deadline, f"{locator} never said {text!r}"
        time.sleep(0.5)


def test_create_and_approve_a_xibao_and_watch_it_reach_every_group(
    server: Served, open_page: Callable[[dict[str, int]], Page]
) -> None:
    cohort = make_camp(server, "browser-xibao", {"browser-robot-x": True})
    student = make_student(server, cohort, "阿杰")
    page = open_page(DESKTOP)
    sign_in(page, server)
    page.get_by_role("link", name="喜报").click()
    form = page.locator("#xibao-form")
    form.get_by_label("期次（按名字找学员时）").select_option(str(cohort))
    form.get_by_label("学员（昵称或 id）").fill("阿杰")
    form.get_by_label("标题").fill("出单啦")
    form.get_by_label("详情").fill("上架第 3 天出了第一单")
    form.get_by_role("button", name="生成海报并发送").click()
    expect(page.locator("h1")).to_have_text("喜报发送进度")
    wait_for_text(page, "#progress-state", "全部已发")  # htmx polls the progress
    expect(page.locator("#progress")).to_contain_text("已发 1")
    shot(page, "xibao_sent_desktop")
    report = page.context.new_page()
    report.goto(student["h5_url"])
    report.locator("#xibao summary").click()
    report.locator("#xibao input[name=title]").fill("上岸了")
    report.locator("#xibao button[type=submit]").click()
    page.goto(server.base + "/console/xibao")
    pending = page.locator(".pending", has_text="上岸了")
    pending.get_by_role("button", name="通过并发送").click()
    wait_for_text(page, "#progress-state", "全部已发")
    shot(page, "xibao_approved_desktop")


def test_retry_a_dead_message(server: Served, open_page: Callable[[dict[str, int]], Page]) -> None:
    cohort = make_camp(server, "browser-dead", {"browser-robot-gone": False})
    schedule = server.admin(
        "POST", "/schedules",
        json={"script_key": "day3_todolist", "cohort_id": cohort,
              "trigger": {"type": "cohort_day", "day": 5, "time": "08:00"},
              "target": {"type": "cohort_groups"}},
    )  # fmt: skip
    assert schedule.status_code == 201, schedule.text
    page = open_page(DESKTOP)
    sign_in(page, server)
    page.goto(f"{server.base}/console/schedules?cohort_id={cohort}")
    page.locator(f"#schedule-{schedule.json()['id']}").get_by_role(
        "button", name="立即发送"
    ).click()
    expect(page.locator("#ran")).to_contain_text("写入 1 条")
    row = page.locator("#outbox tr", has_text="browser-robot-gone 群")
    deadline = time.monotonic() + 30
    while not row.count() or "失败" not in row.inner_text():
        assert time.monotonic() < deadline, "the message never died"
        page.goto(server.base + "/console/outbox?status=dead")
        time.sleep(0.5)
    expect(row).to_contain_text("群机器人 webhook 地址无效，或机器人已被移出群")
    shot(page, "outbox_dead_desktop")
    assert server.sandbox("/robots", {"key": "browser-robot-gone"}).status_code < 300
    row.get_by_role("button", name="重试").click()
    expect(row).to_contain_text("已处理")
    deadline = time.monotonic() + 30
    while "已发送" not in row.inner_text():
        assert time.monotonic() < deadline, "the retried message was never sent"
        page.goto(server.base + "/console/outbox?target=browser-robot-gone")
        row = page.locator("#outbox tr", has_text="browser-robot-gone 群")
        time.sleep(0.5)
    shot(page, "outbox_retried_desktop")


def test_turn_an_unanswered_question_into_a_rule_and_see_the_next_one_answered(
    server: Served, open_page: Callable[[dict[str, int]], Page]
) -> None:
    cohort = make_camp(server, "browser-qa", {})
    student = make_student(server, cohort, "木子")
    asking = open_page(PHONE)
    asking.goto(student["h5_url"])
    asking.locator("#faq input[name=q]").fill("结营证书在哪里领")
    asking.locator("#faq button[type=submit]").click()
    expect(asking.locator("#faq-none")).to_be_visible()
    page = open_page(PHONE)
    sign_in(page, server)
    page.goto(server.base + "/console/qa")
    item = page.locator(".unanswered", has_text="结营证书在哪里领")
    item.get_by_role("link", name="转为规则").click()
    expect(page.get_by_label("关键词或正则（每行一个）")).to_have_value("结营证书在哪里领")
    page.get_by_label("回复文字").fill("结营后在学习页点「结营证书」下载。")
    page.get_by_role("button", name="保存").click()
    test_box = page.locator("#qa-test")
    test_box.get_by_label("学员的问题").fill("请问结营证书在哪里领？")
    test_box.get_by_role("button", name="看看谁来回答").click()
    expect(page.locator("#qa-answer")).to_have_text("结营后在学习页点「结营证书」下载。")
    shot(page, "qa_rule_phone")
    asking.goto(student["h5_url"])  # a fresh page: the same search again is a fragment move
    asking.locator("#faq input[name=q]").fill("结营证书在哪里领")
    asking.locator("#faq button[type=submit]").click()
    expect(asking.locator("#faq-results")).to_contain_text("结营后在学习页点「结营证书」下载。")
