"""Q&A end to end: a member's text through /wecom/callback, the reply (passive, or an app
message the sandbox received), on both database backends."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.admin.models import AuditEntry
from bots.qa.models import QaUnanswered
from tests.bots.qa.conftest import ASKER, OTHER, Desk


async def test_a_matching_question_is_answered_once(desk: Desk) -> None:
    rule = await desk.rule(patterns=["怎么退款"], reply="退款请在第 3 天前联系班主任。")

    sent = await desk.ask("请问 怎么退款？")
    await desk.wecom.redeliver(sent)  # WeCom's retry: no second answer

    assert desk.replies() == ["退款请在第 3 天前联系班主任。"]
    [row] = await desk.outbox()
    # Answered within the callback's budget: a passive reply, recorded as sent.
    assert (row.channel, row.target, row.status) == ("passive_reply", ASKER, "sent")
    assert row.key.startswith("qa:msg:")
    assert row.key.endswith(f":{rule['id']}")
    assert (await desk.admin.get(f"/qa-rules/{rule['id']}")).json()["hits"] == 1


async def test_each_mode(desk: Desk) -> None:
    await desk.rule(mode="exact", patterns=["课表"], reply="exact")
    await desk.rule(mode="contains", patterns=["直播回放"], reply="contains")
    await desk.rule(mode="regex", patterns=[r"第\s*\d+\s*天.*作业"], reply="regex")

    for question in [
        "课表！",
        "课表在哪",
        "哪里看 直播-回放",
        "第 3 天的作业交到哪",
        "第三天作业",
    ]:
        await desk.ask(question)

    # "课表在哪" is not exactly 课表; "第三天" has no digits for the regex.
    assert desk.replies() == ["exact", "contains", "regex"]


async def test_priority_order_and_block(desk: Desk) -> None:
    await desk.rule(patterns=["证书"], reply="low", priority=200)
    await desk.rule(patterns=["证书"], reply="first", priority=10, block=False)
    await desk.rule(patterns=["结营证书"], reply="second", priority=20)
    await desk.rule(patterns=["证书"], reply="same priority, later id", priority=20)

    await desk.ask("结营证书什么时候发")
    await desk.flush()

    # The non-blocking rule answers and lets the next one try; that one blocks the rest.
    assert desk.replies() == ["first", "second"]


async def test_checkin_messages_are_not_questions(desk: Desk) -> None:
    await desk.rule(patterns=["打卡"], reply="qa")

    await desk.ask("打卡 今天读完了第二章")
    await desk.ask("怎么补打卡")

    assert desk.replies() == ["qa"]
    async with desk.sessions() as session:
        assert (await session.execute(select(QaUnanswered))).first() is None


async def test_scope_cohort_rules_answer_only_its_members(desk: Desk) -> None:
    six = await desk.admin.cohort(name="第 6 期", channel_state="c6")
    seven = await desk.admin.cohort(name="第 7 期", channel_state="c7")
    await desk.member(ASKER, six["id"])
    await desk.member(OTHER, seven["id"])
    await desk.rule(patterns=["开营"], reply="6 期 3 月 2 日开营", cohort_id=six["id"])
    await desk.rule(patterns=["开营"], reply="开营时间见群公告", priority=500)

    await desk.ask("什么时候开营", ASKER)
    await desk.ask("什么时候开营", OTHER)

    assert desk.replies(ASKER) == ["6 期 3 月 2 日开营"]
    assert desk.replies(OTHER) == ["开营时间见群公告"]


async def test_cooldown_per_rule_and_chat(desk: Desk) -> None:
    # An hour: WeCom itself drops an identical app message within 30 minutes
    # (WeComClient sends with enable_duplicate_check, interval 1800 s).
    await desk.rule(patterns=["作业"], reply="作业在 H5 页提交", cooldown_s=3600)

    await desk.ask("作业交哪")
    await desk.ask("作业交哪里呀")  # within the hour: silent
    await desk.ask("作业交哪", OTHER)  # another chat has its own cooldown
    desk.clock.advance(timedelta(seconds=3600))
    await desk.ask("作业怎么交")

    assert desk.replies(ASKER) == ["作业在 H5 页提交", "作业在 H5 页提交"]
    assert desk.replies(OTHER) == ["作业在 H5 页提交"]
    async with desk.sessions() as session:  # silenced, not unanswered
        assert (await session.execute(select(QaUnanswered))).first() is None


async def test_a_script_reply_is_rendered_for_the_asker(desk: Desk) -> None:
    cohort = await desk.admin.cohort(name="第 6 期", camp="写作营", channel_state="c6")
    await desk.member(ASKER, cohort["id"])
    await desk.admin.created(
        "/scripts",
        {
            "key": "faq_days",
            "title": "营期天数",
            "msgtype": "text",
            "body": "{{ student_name }}，{{ camp_name }}{{ cohort_name }}共 {{ total_days }} 天。",
            "category": "faq",
        },
    )
    await desk.rule(patterns=["几天"], script_key="faq_days")

    await desk.ask("这个营一共几天")

    assert desk.replies() == [f"成员{ASKER}，写作营第 6 期共 21 天。"]


async def test_unanswered_questions_are_counted_once_per_distinct_text(desk: Desk) -> None:
    await desk.rule(patterns=["退款"], reply="找班主任")
    for question in ["怎么开发票？", "怎么 开发票", "怎么开发票!", "退款", "能换期吗"]:
        await desk.ask(question)
    desk.clock.advance(timedelta(minutes=5))
    await desk.ask("怎么开发票", OTHER)

    listed = (await desk.admin.get("/qa/unanswered")).json()
    assert listed["total"] == 2
    top, other = listed["items"]
    assert (top["normalized"], top["example"], top["count"]) == ("怎么开发票", "怎么开发票？", 4)
    assert top["last_seen_at"] > top["first_seen_at"]
    assert (other["normalized"], other["count"]) == ("能换期吗", 1)

    assert (await desk.admin.delete(f"/qa/unanswered/{top['id']}")).status_code == 204
    assert (await desk.admin.delete(f"/qa/unanswered/{top['id']}")).status_code == 404
    assert (await desk.admin.get("/qa/unanswered")).json()["total"] == 1


async def test_a_rule_saved_after_a_question_answers_the_next_one(desk: Desk) -> None:
    await desk.ask("有没有读书笔记模板")
    rule = await desk.rule(patterns=["笔记模板"], reply="模板在群文件里")
    await desk.ask("有没有读书笔记模板")
    await desk.admin.patch(f"/qa-rules/{rule['id']}", json={"enabled": False})
    await desk.ask("有没有读书笔记模板")

    assert desk.replies() == ["模板在群文件里"]
    async with desk.sessions() as session:
        actions = (
            await session.scalars(
                select(AuditEntry.action).where(AuditEntry.resource == "qa-rules")
            )
        ).all()
    assert actions == ["create", "update"]
