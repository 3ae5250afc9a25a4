"""What a member's question costs in SQL statements (each one ~0.14 ms of CPU through the
async session), and that reading the asker's scopes only when a matched rule needs them
answers exactly as before: scoped rules for their cohort's or group's members only."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine

from app.models import Group, GroupMembership, Member, OutboxMessage
from bots.qa import answer as qa_answer
from bots.qa import matching
from bots.qa.models import QaUnanswered
from tests.bots.qa.conftest import ASKER, OTHER, Desk

UNKNOWN = "zhaoliu"  # CampBot has no member row for them


@contextmanager
def counted(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements `engine` sends while the block runs."""
    seen: list[str] = []

    def note(*args: Any) -> None:
        seen.append(args[2])  # (conn, cursor, statement, parameters, context, executemany)

    event.listen(engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", note)


class Asking:
    """Calls the Q&A answer as the handler does, one transaction a question."""

    def __init__(self, desk: Desk, engine: AsyncEngine) -> None:
        self.desk, self.engine, self.asked = desk, engine, 0

    async def __call__(self, userid: str, question: str) -> tuple[list[str], list[str]]:
        """The replies queued for `userid` and the statements the answer cost."""
        async with self.desk.sessions.begin() as session:  # the matcher built beforehand
            await matching.get_matcher(session=session)
        self.asked += 1
        with counted(self.engine) as statements:
            async with self.desk.sessions.begin() as session:
                rows = await qa_answer.answer(
                    session=session,
                    userid=userid,
                    question=question,
                    event_key=f"test:{self.asked}",
                    public_base_url="https://camp.example.com",
                    now=self.desk.clock.now(),
                )
        async with self.desk.sessions() as session:
            found = await session.scalars(
                select(OutboxMessage).where(OutboxMessage.id.in_(rows)).order_by(OutboxMessage.id)
            )
            replies = [row.payload["message"]["content"] for row in found]  # type: ignore[index]
        return replies, statements


async def _unanswered(desk: Desk, normalized: str) -> int:
    async with desk.sessions() as session:
        count = await session.scalar(
            select(QaUnanswered.count).where(QaUnanswered.normalized == normalized)
        )
        return count or 0


async def test_a_question_costs_one_lookup_and_scopes_only_when_a_rule_is_scoped(
    desk: Desk, engine: AsyncEngine
) -> None:
    six = await desk.admin.cohort(name="第 6 期", channel_state="c6")
    seven = await desk.admin.cohort(name="第 7 期", channel_state="c7")
    await desk.member(ASKER, six["id"])
    await desk.member(OTHER, seven["id"])
    await desk.rule(patterns=["退款"], reply="找班主任")
    await desk.rule(patterns=["开营"], reply="6 期 3 月 2 日开营", cohort_id=six["id"])
    ask = Asking(desk, engine)

    # Unanswered: the rules' version and the asker in one statement, then the count.
    replies, statements = await ask(UNKNOWN, "怎么开发票")
    assert (replies, len(statements)) == ([], 2)
    replies, statements = await ask(ASKER, "怎么开发票")
    assert (replies, len(statements)) == ([], 2)
    assert await _unanswered(desk, "怎么开发票") == 2

    # Answered by a rule for everyone: no scopes read. Lookup, the rule, its hit, the reply.
    replies, statements = await ask(ASKER, "怎么退款")
    assert (replies, len(statements)) == (["找班主任"], 4)

    # A rule for cohort 6 matched: its member's scopes are read, and it answers them...
    replies, statements = await ask(ASKER, "什么时候开营")
    assert (replies, len(statements)) == (["6 期 3 月 2 日开营"], 5)
    # ...not a member of cohort 7 (nothing answered them: counted), nor a stranger.
    replies, statements = await ask(OTHER, "什么时候开营")
    assert (replies, len(statements)) == ([], 3)
    replies, statements = await ask(UNKNOWN, "什么时候开营")
    assert (replies, len(statements)) == ([], 2)
    assert await _unanswered(desk, "什么时候开营") == 2


async def test_a_script_reads_the_askers_scopes_once(desk: Desk, engine: AsyncEngine) -> None:
    six = await desk.admin.cohort(name="第 6 期", camp="写作营", channel_state="c6")
    await desk.member(ASKER, six["id"])
    for key, body in [
        ("days", "共 {{ total_days }} 天"),
        ("name", "{{ student_name }}，{{ cohort_name }}"),
    ]:
        script = {"key": key, "title": key, "msgtype": "text", "body": body, "category": "faq"}
        await desk.admin.created("/scripts", script)
        await desk.rule(patterns=["几天"], script_key=key, block=False)

    replies, statements = await Asking(desk, engine)(ASKER, "一共几天")

    # Unscoped rules, yet rendered for the asker's cohort: their scopes read, once.
    assert replies == ["共 21 天", f"成员{ASKER}，第 6 期"]
    assert sum("cohort_members" in statement for statement in statements) == 1


async def test_group_rules_answer_those_in_the_group_in_answer_order(
    desk: Desk, engine: AsyncEngine
) -> None:
    await desk.member(ASKER, None)
    await desk.member(OTHER, None)
    now = desk.clock.now()
    async with desk.sessions.begin() as session:
        group = Group(chat_id="wrQa", channel="appchat", created_at=now, updated_at=now)
        session.add(group)
        await session.flush()
        members = await session.execute(select(Member.userid, Member.id))
        for userid, member_id in members:
            session.add(
                GroupMembership(
                    group_id=group.id,
                    member_key=str(userid),
                    member_id=member_id,
                    joined_at=now,
                    left_at=now if userid == OTHER else None,  # OTHER has left
                )
            )
        group_id = group.id
    await desk.rule(patterns=["直播"], reply="for everyone", priority=20)
    await desk.rule(patterns=["直播"], reply="group", group_id=group_id, priority=10, block=False)
    ask = Asking(desk, engine)

    assert (await ask(ASKER, "今晚直播几点"))[0] == ["group", "for everyone"]
    assert (await ask(OTHER, "今晚直播几点"))[0] == ["for everyone"]
    assert (await ask(UNKNOWN, "今晚直播几点"))[0] == ["for everyone"]
