"""Issue 10, finding 2: a saved Q&A regex cannot freeze the service. The polynomial patterns
the old checks stored (seconds to minutes of backtracking per question) are accepted and
answered at once, from a member's 10 KB message and from the H5 FAQ search, without
blocking the event loop for more than 100 ms."""

from __future__ import annotations

from app.admin import h5_tokens
from tests.bots.qa.conftest import ASKER, Desk
from tests.lag import MAX_LAG_S, loop_lag

PATTERNS = {r"x.*y.*z.*w": "xyzw", r"a.*b.*c.*d.*e": "abcde", r"a.*b.*c.*d.*e.*f.*g.*h": "abcd"}


def blocks(letters: str, length: int) -> str:
    """Runs of each letter: backtracking tries every way to split them among the `.*`s."""
    return "".join(c * (length // len(letters)) for c in letters)


async def _rules(desk: Desk) -> None:
    for pattern, name in PATTERNS.items():
        await desk.rule(mode="regex", patterns=[pattern], question=f"{name}？", reply=name)


async def test_a_10_kb_member_message_does_not_stall_the_loop(desk: Desk) -> None:
    await _rules(desk)
    # 450 characters that backtracking chokes on (under the old 2,048-character cut), then
    # filler to 10 KB; and the same with the missing `w` at the very end.
    stuck = (blocks("xyz", 450) + "的" * 10_240)[:10_240]
    answered = blocks("xyz", 450) + "w"

    async with loop_lag() as lag:
        await desk.ask(stuck)
        await desk.ask(answered)
        await desk.ask("a-b-c-d-e?")
        await desk.flush()

    assert desk.replies() == ["xyzw", "abcde"]
    assert lag.worst < MAX_LAG_S, f"the event loop was blocked for {lag.worst:.3f} s"


async def test_a_200_character_faq_search_does_not_stall_the_loop(desk: Desk) -> None:
    await _rules(desk)
    cohort = await desk.admin.cohort()
    member = await desk.member(ASKER, cohort["id"])
    async with desk.sessions() as session:
        tokens = await h5_tokens.tokens_for(
            session=session, member_ids=[member["id"]], now=desk.clock.now()
        )
        await session.commit()
    url = f"/h5/m/{tokens[member['id']]}/faq"
    queries = [blocks("xyz", 200), blocks("abcd", 200), ("abcdefg" * 40)[:200]]

    async with loop_lag() as lag:
        found = [
            await desk.harness.client.get(
                url, params={"q": q}, headers={"Accept": "application/json"}
            )
            for q in queries
        ]

    assert [[e["answer"] for e in r.json()] for r in found] == [[], [], ["abcde"]]
    assert lag.worst < MAX_LAG_S, f"the event loop was blocked for {lag.worst:.3f} s"
