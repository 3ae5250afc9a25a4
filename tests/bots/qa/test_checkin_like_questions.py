"""Questions that start with 打卡 but are not check-ins (「打卡时间是几点」) are Q&A's:
the check-in handler leaves them alone, so Q&A must answer or count them."""

from __future__ import annotations

from sqlalchemy import select

from bots.qa.models import QaUnanswered
from tests.bots.qa.conftest import Desk


async def test_a_question_starting_with_daka_is_answered(desk: Desk) -> None:
    await desk.rule(patterns=["打卡时间"], reply="每天 4 点前都算当天。")

    await desk.ask("打卡时间是几点？")
    await desk.ask("打卡率怎么算")

    assert desk.replies() == ["每天 4 点前都算当天。"]
    async with desk.sessions() as session:
        unanswered = (await session.execute(select(QaUnanswered.example))).scalars().all()
    assert unanswered == ["打卡率怎么算"]


async def test_a_checkin_is_still_not_a_question(desk: Desk) -> None:
    await desk.rule(patterns=["打卡"], reply="qa")

    for checkin in ("打卡", "打卡 今天读完了第二章", "打卡：笔记", " 打卡，第三章"):
        await desk.ask(checkin)

    assert desk.replies() == []
    async with desk.sessions() as session:
        assert (await session.execute(select(QaUnanswered))).first() is None
