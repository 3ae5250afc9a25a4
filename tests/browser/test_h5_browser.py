"""A real browser on the personal H5 page: Debian's headless Chromium, driven by Playwright,
against the real app served by uvicorn (SQLite in a temp folder). It checks in with text
and an image and sees the streak go from 0 to 1; the screenshot is kept in
`test-artifacts/h5_checkin.png` at the repo root.

Chromium comes from Debian (`apt-get install -y --no-install-recommends chromium`), not from
Playwright's download; without it this test fails, saying so (CI installs it).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import sync_playwright

from tests.browser.stage import (
    ARTIFACTS,
    PNG_SIGNATURE,
    TZ,
    camp_today,
    launch,
    png_file,
    require_chromium,
    served,
)


async def _seed(database_url: str, *, today: datetime) -> str:
    """Schema, a cohort on its day 1 (by the real clock), one student; answers their token."""
    import app.main  # noqa: F401 - every model module, as the server has them
    from app.admin import h5_tokens
    from app.admin.models import Cohort, CohortMember
    from app.db import Base, create_engine, create_sessionmaker
    from app.models import Member

    engine = create_engine(database_url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        # Camp days turn at 04:00: day 1 is "yesterday" until then.
        camp_date = camp_today(today)
        async with create_sessionmaker(engine)() as session:
            cohort = Cohort(
                name="6 期",
                camp="跨境电商实战营",
                start_date=camp_date - timedelta(days=1),
                days=7,
                channel_state="camp6",
                timezone=TZ,
                created_at=today,
                updated_at=today,
            )
            member = Member(
                external_userid="wmBrowserStudent", name="小林", created_at=today, updated_at=today
            )
            session.add_all([cohort, member])
            await session.flush()
            session.add(CohortMember(member_id=member.id, cohort_id=cohort.id, joined_at=today))
            tokens = await h5_tokens.tokens_for(session=session, member_ids=[member.id], now=today)
            await session.commit()
            return tokens[member.id]
    finally:
        await engine.dispose()


def test_student_checks_in_from_a_phone_browser(tmp_path: Path) -> None:
    require_chromium()
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'campbot.db'}"
    token = asyncio.run(_seed(database_url, today=datetime.now(UTC)))
    photo = png_file(tmp_path / "homework.png")
    ARTIFACTS.mkdir(exist_ok=True)
    screenshot = ARTIFACTS / "h5_checkin.png"
    screenshot.unlink(missing_ok=True)

    with served(tmp_path, database_url) as base, sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844}, locale="zh-CN")
            page.goto(f"{base}/h5/m/{token}")
            assert page.locator("#camp-day").inner_text() == "第 1 天"
            assert page.locator("#streak").inner_text() == "0"

            form = page.locator("#checkin form.entry-form")
            form.locator("textarea[name=text]").fill("第一天：完成选品表，附截图")
            form.locator("input[type=file]").set_input_files(str(photo))
            assert form.locator(".preview img").count() == 1  # the inline preview script ran
            with page.expect_navigation():
                form.locator("button[type=submit]").click()

            assert page.locator("#flash").inner_text() == "打卡成功！"
            assert page.locator("#streak").inner_text() == "1"
            assert "第一天：完成选品表，附截图" in page.locator("#checkin").inner_text()
            shown = page.locator("#checkin .thumbs img").first
            shown.wait_for()
            assert shown.evaluate("img => img.complete && img.naturalWidth") == 320
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()

    assert screenshot.read_bytes()[:8] == PNG_SIGNATURE
    assert len(list((tmp_path / "uploads").rglob("*.png"))) == 1
