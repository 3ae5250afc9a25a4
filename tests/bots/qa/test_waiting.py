"""Which member texts the callback holds for a passive reply: those a Q&A rule may answer
(`bots.qa.handlers.may_answer`, by this process's matcher, no I/O). The others are answered
at once and handled after; a rule saved since the matcher was built still answers, exactly
once — passively when saved here, by app message when another instance saved it."""

from __future__ import annotations

from sqlalchemy import update

from bots.qa import matching
from bots.qa.models import QaRule, QaRulesVersion, QaUnanswered
from tests.bots.qa.conftest import Desk, Watch
from tests.bots.qa.test_passive_reply import ANSWER
from tests.support import count_rows


async def test_a_text_no_rule_may_answer_is_not_held_and_still_handled(
    desk: Desk,
    passives: Watch,
) -> None:
    await desk.rule(patterns=["怎么退款"], reply=ANSWER)
    answered = await desk.ask("请问怎么退款？")  # builds this process's matcher
    assert answered.passive_reply is not None
    assert len(passives.made) == 1

    sent = await desk.ask("收到，谢谢老师")

    assert sent.response.text == "success"
    assert len(passives.made) == 1  # no hand-off: the callback did not wait
    assert await count_rows(desk.sessions, QaUnanswered) == 1  # handled all the same
    assert desk.app_messages() == []


async def test_a_rule_saved_here_answers_passively_at_once(desk: Desk) -> None:
    await desk.rule(patterns=["怎么退款"], reply=ANSWER)
    await desk.ask("怎么退款")  # the matcher is built, without 证书
    await desk.rule(patterns=["证书"], reply="结营后 7 天内发证书。")

    sent = await desk.ask("证书什么时候发")

    assert sent.passive_reply is not None
    assert sent.passive_reply.content == "结营后 7 天内发证书。"
    assert desk.app_messages() == []


async def test_a_rule_another_instance_saved_answers_once_by_message_then_passively(
    desk: Desk,
) -> None:
    rule = await desk.rule(patterns=["怎么退款"], reply=ANSWER)
    await desk.ask("怎么退款")
    # Another instance changes the rule: the row and the version move in the database, and
    # this process's matcher (without 证书) stays as it was until its next question.
    async with desk.sessions() as session, session.begin():
        await session.execute(
            update(QaRule).where(QaRule.id == rule["id"]).values(patterns=["证书"])
        )
        await session.execute(update(QaRulesVersion).values(version=QaRulesVersion.version + 1))
    assert not matching.may_answer("证书什么时候发")

    first = await desk.ask("证书什么时候发")
    second = await desk.ask("证书怎么领")

    assert first.response.text == "success"  # not held; answered by app message, once
    assert desk.app_messages() == [ANSWER]
    assert second.passive_reply is not None  # the first question rebuilt the matcher
    assert second.passive_reply.content == ANSWER
