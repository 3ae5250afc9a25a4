"""问答 in the console: a question nothing answered becomes a pre-filled rule, after which the
same question is answered (the student's FAQ search and the test box agree); the test box
says which rule answers and why; a regex RE2 refuses is named beside the field."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from app.console.models import Role
from bots.qa.models import QaRule, QaUnanswered
from tests.console.support import Console, make_account, make_cohort, make_member, member_token
from tests.support import AppHarness

QUESTION = "直播回放在哪里看"


async def test_an_unanswered_question_becomes_a_rule_and_is_answered_next_time(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    cohort = await make_cohort(sessions, clock)
    student = await make_member(sessions, clock, cohort, "小林")
    token = await member_token(sessions, clock, student)
    missed = await console_app.client.get(f"/h5/m/{token}/faq", params={"q": QUESTION})
    assert "没有找到答案" in missed.text
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        page = await browser.get("/console/qa")
        assert QUESTION in page.text
        async with sessions() as session:
            asked = await session.scalar(select(QaUnanswered.id))
        form = await browser.get(f"/console/qa/rules/new?from={asked}")
        assert f">{QUESTION}</textarea>" in form.text  # the pattern, pre-filled
        made = await browser.post(
            "/console/qa/rules",
            {
                "patterns": QUESTION,
                "mode": "contains",
                "reply": "回放在学习页的「直播」栏目。",
                "question": QUESTION,
                "priority": "100",
                "cooldown_s": "0",
                "block": "1",
                "enabled": "1",
                "from": str(asked),
            },
        )
        assert made.status_code == 303, made.text
        tested = await browser.hx_post("/console/qa/test", {"question": "请问直播回放在哪里看？"})
        assert "回放在学习页的「直播」栏目。" in tested.text
        assert f"问题里包含关键词「{QUESTION}」" in tested.text
    answered = await console_app.client.get(f"/h5/m/{token}/faq", params={"q": QUESTION})
    assert "回放在学习页的「直播」栏目。" in answered.text
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(QaUnanswered)) == 0


async def test_the_test_box_shows_which_rule_answers_and_which_are_blocked(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        for priority, pattern, reply in ((10, "退款", "先答的"), (20, "怎么退款", "后面的")):
            made = await browser.post(
                "/console/qa/rules",
                {
                    "patterns": pattern,
                    "mode": "contains",
                    "reply": reply,
                    "priority": str(priority),
                    "cooldown_s": "0",
                    "block": "1",
                    "enabled": "1",
                },
            )
            assert made.status_code == 303, made.text
        tested = await browser.hx_post("/console/qa/test", {"question": "怎么 退款？"})
        nothing = await browser.hx_post("/console/qa/test", {"question": "今天天气"})
    assert "先答的" in tested.text
    assert "但前面的规则已经回答并阻止了后面的规则" in tested.text
    assert "没有规则回答" in nothing.text


async def test_a_regex_re2_refuses_is_named_beside_the_patterns(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        refused = await browser.post(
            "/console/qa/rules",
            {
                "patterns": r"(a)\1",
                "mode": "regex",
                "reply": "x",
                "priority": "1",
                "cooldown_s": "0",
                "enabled": "1",
            },
        )
        both = await browser.post(
            "/console/qa/rules",
            {"patterns": "退款", "mode": "contains", "priority": "1", "cooldown_s": "0"},
        )
    assert refused.status_code == 422
    assert 'id="patterns-error"' in refused.text
    assert both.status_code == 422
    assert "须填且只填一个" in both.text
    async with sessions() as session:
        assert await session.scalar(select(func.count()).select_from(QaRule)) == 0


async def test_an_odd_cohort_in_the_test_box_is_no_cohort(
    console_app: AppHarness, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    """'²' and a 5,000-digit number pass str.isdigit; int() refused one and the other was a
    5,000-digit int: both are now simply no cohort, never a 500."""
    await make_account(sessions, clock, "xiaolu", Role.OPERATOR)
    async with Console(console_app.app) as browser:
        await browser.sign_in("xiaolu")
        for odd in ("²", "9" * 5000):
            tested = await browser.hx_post(
                "/console/qa/test", {"question": "今天天气", "cohort_id": odd}
            )
            assert tested.status_code == 200, tested.text
            assert "没有规则回答" in tested.text
