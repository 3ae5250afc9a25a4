"""`/admin/api/cohorts/{id}/checkin-rules`: defaults, edits (audited, scores recomputed), and
422s in Chinese for values the rules cannot use."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

import schedules.models  # noqa: F401 - cohort hooks re-plan schedules: their tables
from app.clock import ManualClock
from app.settings import Settings
from bots.checkin import service
from bots.checkin.models import EntryKind, MemberScore
from tests.bots.checkin.camp import local, make_cohort, make_member
from tests.support import running_app

Sessions = async_sessionmaker[AsyncSession]
ADMIN_TOKEN = "test-admin-token"
RULES = "/admin/api/cohorts/{id}/checkin-rules"


@pytest.fixture
def settings() -> Settings:
    return Settings(ADMIN_TOKEN=ADMIN_TOKEN, _env_file=None)  # type: ignore[call-arg]


@pytest.fixture
async def client(
    settings: Settings, clock: ManualClock, engine: AsyncEngine
) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(settings=settings, clock=clock, engine=engine) as harness:
        harness.client.headers["Authorization"] = f"Bearer {ADMIN_TOKEN}"
        yield harness.client


async def _cohort(sessions: Sessions) -> int:
    async with sessions.begin() as session:
        cohort = await make_cohort(session)
        return cohort.id


async def test_a_cohort_without_rules_shows_the_defaults(
    client: httpx.AsyncClient, sessions: Sessions
) -> None:
    cohort_id = await _cohort(sessions)
    response = await client.get(RULES.format(id=cohort_id))
    assert response.status_code == 200
    assert response.json() == {
        "cohort_id": cohort_id,
        "customized": False,
        "day_boundary": "04:00",
        "makeup_days": 2,
        "makeup_cost": 5,
        "leave_limit": 2,
        "checkin_points": 10,
        "homework_points": 20,
        "milestones": {},
        "full_attendance_points": 100,
    }
    missing = await client.get(RULES.format(id=999))
    assert missing.status_code == 404
    assert "999" in missing.json()["detail"]


async def test_an_edit_is_audited_and_rescores_the_cohort(
    client: httpx.AsyncClient, sessions: Sessions, clock: ManualClock
) -> None:
    async with sessions.begin() as session:
        cohort = await make_cohort(session)
        member = await make_member(session, cohort, "小林")
        for day in (1, 2, 3):
            await service.submit(
                session=session,
                member_id=member.id,
                kind=EntryKind.CHECKIN,
                text="打卡",
                images=(),
                now=local(day),
            )
        cohort_id, member_id = cohort.id, member.id
    clock.set(local(3, 22))
    body = {"milestones": {"3": 30}, "day_boundary": "05:30", "checkin_points": 12}
    response = await client.put(RULES.format(id=cohort_id), json=body)
    assert response.status_code == 200, response.text
    saved = response.json()
    assert (saved["customized"], saved["day_boundary"], saved["milestones"]) == (
        True,
        "05:30",
        {"3": 30},
    )
    assert saved["makeup_days"] == 2  # fields not sent keep their value
    assert (await client.get(RULES.format(id=cohort_id))).json() == saved
    # Entries keep what they earned (3 × 10); the new "3" milestone adds 30.
    async with sessions() as session:
        score = await session.get(MemberScore, (member_id, cohort_id))
        assert score is not None
        assert score.points == 60
    audit = (await client.get("/admin/api/audit", params={"resource": "checkin-rules"})).json()
    [entry] = audit["items"]
    assert entry["action"] == "update"
    assert entry["actor"] == "admin"
    assert entry["before"]["day_boundary"] == "04:00"
    assert entry["after"]["checkin_points"] == 12


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"day_boundary": "25:00"}, "day_boundary", "时间格式应为 HH:MM"),
        ({"day_boundary": "4点"}, "day_boundary", "时间格式应为 HH:MM"),
        ({"checkin_points": -1}, "checkin_points", "不能小于 0"),
        ({"makeup_cost": "五"}, "makeup_cost", "应为整数"),
        ({"milestones": {"0": 10}}, "milestones", "键应为 1–366 的整数"),
        ({"milestones": {"七": 10}}, "milestones", "不是连续打卡天数"),
        ({"milestones": {"7": -5}}, "milestones", "奖励应在 0–10000 积分之间"),
        ({"makup_days": 3}, "makup_days", "不支持的字段"),
    ],
)
async def test_bad_values_are_422_in_chinese_and_change_nothing(
    client: httpx.AsyncClient, sessions: Sessions, body: dict[str, Any], field: str, message: str
) -> None:
    cohort_id = await _cohort(sessions)
    response = await client.put(RULES.format(id=cohort_id), json=body)
    assert response.status_code == 422
    [problem] = response.json()["detail"]
    assert problem["field"] == field
    assert message in problem["message"]
    after = (await client.get(RULES.format(id=cohort_id))).json()
    assert after["customized"] is False


async def test_the_rules_need_the_admin_token(
    client: httpx.AsyncClient, sessions: Sessions
) -> None:
    cohort_id = await _cohort(sessions)
    response = await client.get(RULES.format(id=cohort_id), headers={"Authorization": "Bearer x"})
    assert response.status_code == 401
