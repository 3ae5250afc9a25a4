"""Stored text from students and operators — names, check-in text, comments, script titles
and bodies, Q&A questions, 喜报 — reaches every console page as text: each GET page of the
app (the route list read from the app, so a page added later is covered) answers without a
500 and never carries the hostile markup raw."""

from __future__ import annotations

import re

from fastapi.routing import iter_route_contexts
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.admin.common import Actor
from app.admin.members import service as members
from app.clock import ManualClock
from app.console.models import Role
from app.console.route import ConsoleRoute
from app.models import OutboxMessage
from bots.checkin.models import CheckinEntry
from bots.qa.models import QaRule, QaUnanswered
from bots.xibao.models import Achievement, Broadcast
from schedules import service as schedules
from scripts_library.loader import seed_default_pack
from tests.console.support import (
    Console,
    make_account,
    make_cohort,
    make_member,
    make_robot_group,
    make_script,
    member_token,
    only_id,
)
from tests.images import png_bytes
from tests.support import AppHarness

HOSTILE = "<script>alert(1)</script>\"'{{ 7*7 }}"
RAW = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
_PARAM = re.compile(r"\{([^}:]+)(?::[^}]+)?\}")


async def _hostile_camp(
    app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> dict[str, object]:
    cohort = await make_cohort(sessions, clock, name=HOSTILE, start="2026-02-28")
    async with sessions.begin() as session:
        await seed_default_pack(session=session, now=clock.now())
    group_id = await make_robot_group(
        sessions, clock, cohort, name=HOSTILE, robot_key="robot-x", actor=HOSTILE
    )
    await make_script(
        sessions,
        clock,
        key="hostile",
        title=HOSTILE,
        body=f"{RAW} {{{{ student_name }}}}",
        category=HOSTILE,
    )
    async with sessions.begin() as session:
        schedule = await schedules.create_schedule(
            session=session,
            script_key="hostile",
            cohort_id=cohort,
            trigger={"type": "cohort_day", "day": 3, "time": "08:00"},
            target={"type": "cohort_groups"},
            now=clock.now(),
            default_tz="Asia/Shanghai",
        )
    member = await make_member(sessions, clock, cohort, HOSTILE, userid="hostile-user")
    async with sessions.begin() as session:
        await members.change_tags(
            session=session,
            actor=Actor("t"),
            now=clock.now(),
            member_id=member,
            add=["<b>tag</b>"],
            remove=[],
        )
    token = await member_token(sessions, clock, member)
    for kind in ("checkin", "homework"):
        sent = await app.client.post(
            f"/h5/m/{token}/checkin",
            data={"kind": kind, "text": HOSTILE},
            files={"images": ("x.png", png_bytes(), "image/png")},
        )
        assert sent.status_code == 303, sent.text
    await app.client.post(
        f"/h5/m/{token}/achievements", data={"title": HOSTILE, "detail": HOSTILE}
    )
    await app.client.get(f"/h5/m/{token}/faq", params={"q": HOSTILE})
    return {
        "cohort_id": cohort,
        "member_id": member,
        "group_id": group_id,
        "schedule_id": schedule.id,
        "key": "hostile",
    }


async def _ids(sessions: async_sessionmaker[AsyncSession], found: dict[str, object]) -> None:
    async with sessions() as session:
        found["entry_id"] = await session.scalar(
            select(CheckinEntry.id).where(CheckinEntry.kind == "homework")
        )
        found["item_id"] = await session.scalar(select(QaUnanswered.id))
        found["rule_id"] = await session.scalar(select(QaRule.id))
        found["broadcast_id"] = await session.scalar(select(Broadcast.id))
        found["outbox_id"] = await session.scalar(select(OutboxMessage.id))
    found["n"] = 0
    assert None not in found.values(), found


async def test_hostile_stored_text_is_escaped_on_every_page(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    ids = await _hostile_camp(console_app, sessions, clock)
    ids["account_id"] = await make_account(
        sessions, clock, "boss", Role.ADMIN, display_name=HOSTILE
    )
    ids["achievement_id"] = await only_id(sessions, Achievement.id)
    async with Console(console_app.app) as browser:
        await browser.sign_in("boss")
        # An operator's own edits carry the hostile text into the audit log and the outbox.
        rule = await browser.post(
            "/console/qa/rules",
            {
                "patterns": HOSTILE,
                "mode": "contains",
                "reply": HOSTILE,
                "question": HOSTILE,
                "priority": "1",
                "cooldown_s": "0",
                "block": "1",
                "enabled": "1",
            },
        )
        assert rule.status_code == 303, rule.text
        approved = await browser.post(f"/console/xibao/{ids['achievement_id']}/approve")
        assert approved.status_code == 303, approved.text
        entry = await _ids_and_review(browser, sessions, ids)
        assert entry
        shown = 0
        for context in iter_route_contexts(console_app.app.routes):
            if not isinstance(context.route, ConsoleRoute) or "GET" not in (context.methods or ()):
                continue
            path = _PARAM.sub(lambda m: str(ids[m.group(1)]), context.path)
            for query in ("", f"?cohort_id={ids['cohort_id']}&status=all"):
                page = await browser.get(path + query)
                assert page.status_code < 500, path
                if not page.headers.get("content-type", "").startswith("text/html"):
                    continue
                assert RAW not in page.text, path
                assert "<b>tag</b>" not in page.text, path
                shown += ESCAPED in page.text
        preview = await browser.hx_post(
            "/console/scripts/hostile/preview",
            {"title": "t", "category": "c", "msgtype": "text", "body": HOSTILE},
        )
        assert RAW not in preview.text
    assert shown >= 15  # the pages that show these names, texts and titles


async def _ids_and_review(
    browser: Console, sessions: async_sessionmaker[AsyncSession], ids: dict[str, object]
) -> object:
    await _ids(sessions, ids)
    reviewed = await browser.hx_post(
        f"/console/checkins/{ids['entry_id']}/review", {"score": "60", "comment": HOSTILE}
    )
    assert reviewed.status_code == 200, reviewed.text
    assert RAW not in reviewed.text
    return ids["entry_id"]
