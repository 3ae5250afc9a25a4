"""A real browser on the staff sidebar (聊天工具栏): Debian's headless Chromium, driven by
Playwright, against the real app served by uvicorn on its built-in WeCom sandbox (no WECOM_*
setting), whose development harness plays the WeCom client with a fake `ww`.

In a customer group the assistant sees the due 群SOP item, taps 发送: the fake records exactly
the rendered text, and the row becomes sent; a second tap records nothing new. In a student's
1:1 chat the owner sees the student's streak and latest homework. Screenshots are kept in
`test-artifacts/sidebar_group.png` and `sidebar_single.png`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

from tests.browser.stage import (
    ARTIFACTS,
    PNG_SIGNATURE,
    camp_today,
    launch,
    require_chromium,
    served,
)
from tests.images import png_bytes

ADMIN = "browser-admin"
CHAT = "wrBrowserGroup"
STUDENT = "wmBrowserStudent"
TEXT = "☀️ 早上好！今天的任务：交作业。"


def _admin(base: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{base}/admin/api", headers={"Authorization": f"Bearer {ADMIN}"}, trust_env=False
    )


def _camp(base: str) -> int:
    """A cohort on its day 1, a customer group the assistant runs, a student who handed in
    homework, and a push due now that routes to 群SOP: the item's id."""
    with _admin(base) as admin:
        return _seed(base, admin)


def _seed(base: str, admin: httpx.Client) -> int:
    today = camp_today()
    cohort = admin.post(
        "/cohorts",
        json={
            "name": "6 期",
            "camp": "跨境电商实战营",
            "start_date": (today - timedelta(days=1)).isoformat(),
            "days": 7,
            "channel_state": "camp6",
        },
    ).json()
    group = admin.post(
        "/groups",
        json={
            "cohort_id": cohort["id"],
            "name": "6期学员群",
            "channel": "customer",
            "chat_id": CHAT,
            "owner_userid": "zhangsan",
            "assistant_userid": "lisi",
        },
    )
    assert group.status_code == 201, group.text
    student = admin.post(
        "/members",
        json={
            "external_userid": STUDENT,
            "name": "小林",
            "cohort_id": cohort["id"],
            "staff_userid": "zhangsan",
        },
    ).json()
    page = "/" + student["h5_url"].split("://", 1)[1].split("/", 1)[1]
    for kind, text in (("checkin", "第一天打卡"), ("homework", "作业：选品表已完成")):
        done = httpx.post(
            base + page + "/checkin",
            data={"text": text, "kind": kind},
            files=[("images", ("hw.png", png_bytes((120, 90)), "image/png"))],
            headers={"Accept": "application/json"},
            trust_env=False,
        )
        assert done.status_code == 200, done.text
    script = admin.post(
        "/scripts",
        json={
            "key": "browser_push",
            "title": "今日任务",
            "category": "daily",
            "msgtype": "text",
            "body": TEXT,
        },
    )
    assert script.status_code == 201, script.text
    schedule = admin.post(
        "/schedules",
        json={
            "script_key": "browser_push",
            "cohort_id": cohort["id"],
            "trigger": {"type": "cohort_day", "day": 6, "time": "08:00"},
            "target": {"type": "cohort_groups"},
        },
    ).json()
    assert admin.post(f"/schedules/{schedule['id']}/run").status_code == 200
    [row] = admin.get("/outbox", params={"channel": "staff"}).json()["items"]
    assert (row["target"], row["payload"]["sender"]) == (CHAT, "lisi")
    return int(row["id"])


def test_staff_post_from_the_sidebar_in_a_group_and_see_a_student(tmp_path: Path) -> None:
    require_chromium()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'campbot.db'}"
    from app.migrations import upgrade

    upgrade(database_url)
    ARTIFACTS.mkdir(exist_ok=True)
    shots = [ARTIFACTS / "sidebar_group.png", ARTIFACTS / "sidebar_single.png"]
    for shot in shots:
        shot.unlink(missing_ok=True)
    with (
        served(tmp_path, database_url, extra_env={"ADMIN_TOKEN": ADMIN}) as base,
        sync_playwright() as playwright,
    ):
        item = _camp(base)
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 360, "height": 780}, locale="zh-CN")
            page.goto(f"{base}/sidebar/dev?userid=lisi&entry=group_chat_tools&chat_id={CHAT}")
            entry = page.locator(f'.sop-item[data-id="{item}"]')
            entry.wait_for()
            assert entry.locator(".text").inner_text() == TEXT
            entry.locator("button.send").click()
            page.locator(".item-state", has_text="已发送").wait_for()
            sent = page.evaluate("window.__sentChatMessages")
            assert sent == [{"msgtype": "text", "text": {"content": TEXT}}]
            page.screenshot(path=str(shots[0]), full_page=True)
            entry.locator("button.send").click(force=True)  # a second tap on the spent button
            again = page.evaluate(
                f"fetch('/sidebar/api/tasks/{item}/sent', {{method: 'POST'}}).then(r => r.json())"
            )
            assert again["recorded"] is False
            assert page.evaluate("window.__sentChatMessages.length") == 1
            signatures = page.evaluate("window.__signatures")
            assert all(len(s["signature"]) == 40 for s in signatures)

            page.goto(
                f"{base}/sidebar/dev?userid=zhangsan&entry=single_chat_tools&external_userid={STUDENT}"
            )
            page.locator("#streak").wait_for()
            assert page.locator("#context h2").inner_text() == "小林"
            assert page.locator("#streak").inner_text() == "1"
            latest = page.locator(".latest-homework")
            assert "作业：选品表已完成" in latest.inner_text()
            assert "待点评" in latest.inner_text()
            thumb = latest.locator(".thumbs img").first
            thumb.wait_for()
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=thumb.element_handle()
            )
            page.screenshot(path=str(shots[1]), full_page=True)
        finally:
            browser.close()
        with _admin(base) as admin:
            row = admin.get(f"/outbox/{item}").json()
        assert (row["status"], row["sent_at"] is not None) == ("sent", True)
    for shot in shots:
        assert shot.read_bytes()[:8] == PNG_SIGNATURE
