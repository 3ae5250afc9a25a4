"""The FAQ search of the personal H5 page, end to end on both backends: a cohort's students
find their cohort's and the global answers (never another cohort's), a question nothing
answers is counted as unanswered, and bad queries and tokens are refused."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from app.admin import h5_tokens
from app.clock import ManualClock
from app.db import create_sessionmaker
from app.settings import Settings
from bots.qa import service as qa_service
from bots.qa.models import QaUnanswered
from tests.bots.checkin.camp import local, make_cohort, make_member
from tests.support import running_app

NONE_FOUND = "没有找到答案，可以直接问助教"
JSON = {"Accept": "application/json"}


@dataclass
class Faq:
    client: httpx.AsyncClient
    sessions: async_sessionmaker[AsyncSession]
    clock: ManualClock
    tokens: dict[str, str]  # member name -> token
    ids: dict[str, int]
    rules: dict[str, int]  # rule name -> id

    async def search(self, who: str, query: str, *, json: bool = False) -> httpx.Response:
        return await self.client.get(
            f"/h5/m/{self.tokens[who]}/faq", params={"q": query}, headers=JSON if json else {}
        )

    async def unanswered(self) -> list[tuple[str, int]]:
        async with self.sessions() as session:
            rows = await session.execute(select(QaUnanswered.example, QaUnanswered.count))
            return sorted((example, count) for example, count in rows)


async def _rule(session: AsyncSession, now: Any, **fields: Any) -> int:
    rule = await qa_service.create_rule(
        session=session, fields={"mode": "contains", **fields}, now=now
    )
    return rule.id


@pytest.fixture
async def faq(settings: Settings, engine: AsyncEngine) -> AsyncIterator[Faq]:
    clock = ManualClock(local(1, 20))
    sessions = create_sessionmaker(engine)
    async with sessions() as session:
        six = await make_cohort(session, state="camp6")
        seven = await make_cohort(session, state="camp7")
        members = [
            await make_member(session, six, "小林"),
            await make_member(session, seven, "小张"),
            await make_member(session, None, "路人"),
        ]
        now = clock.now()
        rules = {
            "global": await _rule(
                session, now, patterns=["直播回放"], reply="回放在群文件<b>置顶</b>"
            ),
            "six": await _rule(
                session,
                now,
                patterns=["作业"],
                question="作业什么时候截止？",
                reply="6 期作业周日 22 点截止",
                cohort_id=six.id,
            ),
            "seven": await _rule(
                session, now, patterns=["作业"], reply="7 期作业周六截止", cohort_id=seven.id
            ),
        }
        ids = {m.name or "": m.id for m in members}
        by_id = await h5_tokens.tokens_for(session=session, member_ids=list(ids.values()), now=now)
        await session.commit()
    tokens = {name: by_id[member_id] for name, member_id in ids.items()}
    async with running_app(settings=settings, clock=clock, engine=engine) as harness:
        yield Faq(harness.client, sessions, clock, tokens, ids, rules)


async def test_page_has_the_search_box(faq: Faq) -> None:
    page = (await faq.client.get(f"/h5/m/{faq.tokens['小林']}")).text

    assert f'action="/h5/m/{faq.tokens["小林"]}/faq#faq"' in page
    assert 'name="q"' in page
    assert 'maxlength="200"' in page
    assert NONE_FOUND not in page


async def test_search_finds_the_cohorts_and_global_answers_only(faq: Faq) -> None:
    six = await faq.search("小林", "作业几点截止")
    seven = await faq.search("小张", "作业", json=True)
    replay = await faq.search("小林", "回放", json=True)

    assert six.status_code == 200
    assert six.headers["cache-control"] == "no-store"
    assert "<dt>作业什么时候截止？</dt><dd>6 期作业周日 22 点截止</dd>" in six.text
    assert "7 期作业周六截止" not in six.text
    assert 'value="作业几点截止"' in six.text  # the box keeps the query
    assert NONE_FOUND not in six.text
    assert seven.json() == [
        {"rule_id": faq.rules["seven"], "question": "作业", "answer": "7 期作业周六截止"}
    ]
    assert replay.json() == [
        {
            "rule_id": faq.rules["global"],
            "question": "直播回放",
            "answer": "回放在群文件<b>置顶</b>",
        }
    ]
    html = (await faq.search("小林", "回放")).text
    assert "<dd>回放在群文件&lt;b&gt;置顶&lt;/b&gt;</dd>" in html  # an answer is text
    assert await faq.unanswered() == []


async def test_a_member_in_no_cohort_sees_global_answers(faq: Faq) -> None:
    cohort_rule = await faq.search("路人", "作业", json=True)
    global_rule = await faq.search("路人", "直播回放", json=True)

    assert cohort_rule.json() == []
    assert [entry["rule_id"] for entry in global_rule.json()] == [faq.rules["global"]]


async def test_unanswered_query_is_counted(faq: Faq) -> None:
    page = await faq.search("小林", "怎么开发票？")
    again = await faq.search("小张", "怎么开发票", json=True)
    empty = await faq.search("小林", "   ")

    assert page.status_code == 200
    assert f'<p class="muted" id="faq-none">{NONE_FOUND}</p>' in page.text
    assert again.status_code == 200
    assert again.json() == []
    assert empty.status_code == 200
    assert NONE_FOUND not in empty.text  # nothing asked, nothing to say
    # Counted under the normalized question, as the app's unanswered questions are.
    assert await faq.unanswered() == [("怎么开发票？", 2)]


async def test_query_over_200_characters_is_refused(faq: Faq) -> None:
    longest = await faq.search("小林", "问" * 200, json=True)
    too_long = await faq.search("小林", "问" * 201, json=True)
    as_page = await faq.search("小林", "问" * 201)

    assert longest.status_code == 200
    assert too_long.status_code == 422
    assert too_long.json() == {
        "detail": [{"field": "q", "message": "问题最多 200 字，现在是 201 字"}]
    }
    assert as_page.status_code == 422
    assert '<p class="flash err" role="alert" id="error">问题最多 200 字，现在是 201 字</p>' in (
        as_page.text
    )
    assert await faq.unanswered() == [("问" * 200, 1)]  # only the one that was searched


async def test_bad_and_revoked_tokens_answer_403(faq: Faq) -> None:
    old = faq.tokens["小林"]
    async with faq.sessions() as session:
        await h5_tokens.revoke(session=session, member_id=faq.ids["小林"], now=faq.clock.now())
        await session.commit()

    for token in (old, "1.0.x", old[:-1] + ("A" if old[-1] != "A" else "B")):
        page = await faq.client.get(f"/h5/m/{token}/faq", params={"q": "怎么开发票"})
        as_json = await faq.client.get(f"/h5/m/{token}/faq", params={"q": "作业"}, headers=JSON)
        assert page.status_code == 403
        assert "链接无效或已失效" in page.text
        assert "作业" not in page.text
        assert as_json.status_code == 403
        assert as_json.json() == {"detail": "链接无效或已失效，请联系助教获取新的链接。"}
    assert await faq.unanswered() == []
