"""search_faq: what the H5 page's FAQ search shows a cohort's student."""

from __future__ import annotations

from bots.qa.service import search_faq
from tests.bots.qa.conftest import Desk


async def test_faq_search_in_answer_order_within_the_cohort(desk: Desk) -> None:
    six = await desk.admin.cohort(name="第 6 期", channel_state="c6")
    seven = await desk.admin.cohort(name="第 7 期", channel_state="c7")
    await desk.rule(patterns=["直播回放"], reply="回放在群文件", priority=50)
    await desk.rule(
        mode="regex", patterns=[r"几点.*直播"], question="直播几点开始？", reply="晚 8 点"
    )
    await desk.rule(patterns=["直播"], reply="7 期的直播在周三", cohort_id=seven["id"])
    await desk.rule(mode="regex", patterns=[r"直播\d+"], reply="没有问题文字的正则不展示")

    async with desk.sessions() as session:
        matched = await search_faq(session=session, cohort_id=six["id"], query="今晚几点直播？")
        partial = await search_faq(session=session, cohort_id=six["id"], query="回放")
        nothing = await search_faq(session=session, cohort_id=six["id"], query="？？")

    assert [(e.question, e.answer) for e in matched] == [("直播几点开始？", "晚 8 点")]
    assert [(e.question, e.answer) for e in partial] == [("直播回放", "回放在群文件")]
    assert nothing == []
