"""No bad input to the newer admin routes (Q&A, 喜报, statistics, check-ins, check-in rules,
schedules) answers 500: every route, every parameter, a battery of hostile values."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

# Register every table before the `engine` fixture creates the schema.
import app.admin.models  # noqa: F401
import bots.qa.models
import bots.xibao.models  # noqa: F401
import schedules.models  # noqa: F401
import scripts_library.models  # noqa: F401
from app.admin.models import Cohort, CohortGroup, CohortMember
from app.api.admin.route_class import _as_admin_error
from app.clock import ManualClock
from app.models import Group, Member
from bots.checkin.models import CheckinEntry
from scripts_library.loader import DEFAULT_PACK, import_pack
from tests.admin.conftest import Admin, problems

BAD_IDS = ["0", "-1", "2147483648", "99999999999999999999", "abc", "1.5", "%00", "１"]
BAD_VALUES: list[Any] = [
    None,
    "",
    " ",
    "x" * 5000,
    "a\x00b",
    "\u202e🚀",
    2**31,
    -(2**31) - 1,
    2**63,
    10**30,
    -1,
    1.5,
    True,
    [],
    {},
    [None],
    [2**40],
    {"": 1},
]
BAD_QUERY = ["", "-1", "2147483648", "99999999999999999999", "abc", "\x00", "x" * 3000, "1e9"]
PREFIXES = (
    "/admin/api/qa",
    "/admin/api/achievements",
    "/admin/api/broadcasts",
    "/admin/api/stats",
    "/admin/api/checkins",
    "/admin/api/cohorts/{cohort_id}/checkin-rules",
    "/admin/api/schedules",
)


async def _seed(sessions: async_sessionmaker[AsyncSession], now: Any) -> dict[str, int]:
    async with sessions.begin() as session:
        await import_pack(session=session, paths=[DEFAULT_PACK], author="test", now=now)
        cohort = Cohort(
            name="6 期",
            camp="营",
            start_date=date(2026, 2, 27),
            days=7,
            channel_state="camp6",
            timezone="Asia/Shanghai",
            created_at=now,
            updated_at=now,
        )
        member = Member(external_userid="wmZ", name="张", created_at=now, updated_at=now)
        group = Group(name="g", channel="robot", robot_key="k", status="active", needs_sync=False)
        group.created_at = group.updated_at = now
        session.add_all([cohort, member, group])
        await session.flush()
        session.add(CohortMember(member_id=member.id, cohort_id=cohort.id, joined_at=now))
        session.add(CohortGroup(group_id=group.id, cohort_id=cohort.id, linked_at=now))
        entry = CheckinEntry(
            member_id=member.id,
            cohort_id=cohort.id,
            day=1,
            kind="homework",
            status="on_time",
            text="t",
            images=[],
            submitted_at=now,
            updated_at=now,
        )
        session.add(entry)
        await session.flush()
        return {"cohort": cohort.id, "member": member.id, "group": group.id, "entry": entry.id}


def _bodies(ids: dict[str, int]) -> dict[str, list[dict[str, Any]]]:
    schedule = {
        "script_key": "xibao",
        "cohort_id": ids["cohort"],
        "trigger": {"type": "cohort_day", "day": 1, "time": "08:00"},
        "target": {"type": "cohort_groups"},
    }
    rule = {"patterns": ["退款"], "mode": "contains", "reply": "找助教"}
    return {
        "POST /admin/api/qa-rules": [
            rule,
            {"patterns": ["^退(款|费)$"], "mode": "regex", "script_key": "xibao", "question": "q"},
            rule | {"cohort_id": ids["cohort"], "group_id": ids["group"], "cooldown_s": 5},
        ],
        "PATCH /admin/api/qa-rules/{rule_id}": [
            {"reply": "r"},
            {"mode": "regex", "patterns": ["a+"]},
            {"script_key": "xibao", "reply": None},
        ],
        "POST /admin/api/achievements": [
            {
                "member_id": ids["member"],
                "title": "出单",
                "detail": "d",
                "group_ids": [ids["group"]],
            }
        ],
        "POST /admin/api/achievements/{achievement_id}/approve": [{"group_ids": [ids["group"]]}],
        "POST /admin/api/checkins/{entry_id}/review": [{"score": 90, "comment": "好"}],
        "PUT /admin/api/cohorts/{cohort_id}/checkin-rules": [
            {"makeup_days": 1, "day_boundary": "04:00", "milestones": {"3": 20}}
        ],
        "POST /admin/api/schedules": [
            schedule,
            schedule | {"trigger": {"type": "member_day", "day": 1, "time": "08:00"}},
            schedule | {"trigger": {"type": "cron", "cron": "0 21 * * *"}},
            schedule | {"trigger": {"type": "at", "at": "2026-03-05T08:00:00+08:00"}},
            schedule | {"target": {"type": "groups", "group_ids": [ids["group"]]}},
            schedule | {"target": {"type": "members", "filter": "all"}},
            schedule | {"target": {"type": "staff", "userids": ["zhangsan"]}},
        ],
        "PATCH /admin/api/schedules/{schedule_id}": [
            {"enabled": False},
            {"trigger": {"type": "cron", "cron": "0 21 * * *"}},
            {"target": {"type": "groups", "group_ids": [ids["group"]]}},
        ],
    }


def _mutations(body: dict[str, Any]) -> list[Any]:
    out: list[Any] = [None, [], "x", 1, {}, {"unknown_field": 1}]
    for key, value in body.items():
        for bad in BAD_VALUES:
            out.append(body | {key: bad})
        if isinstance(value, dict):
            for sub in value:
                for bad in BAD_VALUES:
                    out.append(body | {key: value | {sub: bad}})
                    if isinstance(value[sub], list):
                        out.append(body | {key: value | {sub: [bad]}})
        if isinstance(value, list):
            for bad in BAD_VALUES:
                out.append(body | {key: [bad]})
    return out


async def test_no_input_is_a_500(
    admin: Admin, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    ids = await _seed(sessions, clock.now())
    bodies = _bodies(ids)
    schedule = await admin.created("/schedules", bodies["POST /admin/api/schedules"][0])
    rule = await admin.created("/qa-rules", bodies["POST /admin/api/qa-rules"][0])
    real = {
        "cohort_id": ids["cohort"],
        "rule_id": rule["id"],
        "entry_id": ids["entry"],
        "schedule_id": schedule["id"],
        "member_id": ids["member"],
        "achievement_id": 1,
        "broadcast_id": 1,
        "item_id": 1,
        "n": 0,
    }
    failures: list[str] = []
    seen: list[int] = []

    async def hit(method: str, path: str, **kwargs: Any) -> None:
        try:
            response = await admin.harness.client.request(
                method, path, headers=admin.headers, **kwargs
            )
        except Exception as exc:  # an unhandled exception is the 500 hunted here
            failures.append(f"{method} {path} {kwargs!r:.200}: raised {exc!r:.300}")
            return
        seen.append(response.status_code)
        if response.status_code >= 500:
            failures.append(f"{method} {path} {kwargs!r:.200}: {response.status_code}")

    # The OpenAPI document lists every route with its path and query parameters.
    paths: dict[str, dict[str, Any]] = admin.harness.app.openapi()["paths"]
    routes = [(path, ops) for path, ops in paths.items() if path.startswith(PREFIXES)]
    assert len(routes) >= 15
    for template, ops in routes:
        for method, op in ops.items():
            method = method.upper()
            params = op.get("parameters", [])
            names = [p["name"] for p in params if p["in"] == "path"]
            good = template.format(**{n: real[n] for n in names})
            for name in names:
                for bad in BAD_IDS:
                    await hit(
                        method, template.format(**({n: real[n] for n in names} | {name: bad}))
                    )
            for param in (p["name"] for p in params if p["in"] == "query"):
                for bad in BAD_QUERY:
                    await hit(method, good, params={param: bad})
            for body in bodies.get(f"{method} {template}", []):
                for mutated in _mutations(body):
                    await hit(method, good, json=mutated)
                await hit(method, good, content=b"\xff\xfe{")
            await hit(method, good)
    assert len(seen) > 2000
    assert {404, 422} <= set(seen)
    assert failures == [], "\n".join(failures[:80])


async def test_a_nul_in_a_rule_or_schedule_is_a_422(admin: Admin) -> None:
    # PostgreSQL refuses NUL in text outright: without the check this was a 500.
    rule = {"patterns": ["退款"], "mode": "contains", "reply": "a\x00b"}
    assert problems(await admin.post("/qa-rules", json=rule)) == {"reply": "不能包含控制字符"}
    regex = {"patterns": ["退"], "mode": "regex", "script_key": "k\x00", "question": "q"}
    assert problems(await admin.post("/qa-rules", json=regex))["script_key"]
    asked = {"patterns": ["退"], "mode": "exact", "reply": "r", "question": "q\x00"}
    assert problems(await admin.post("/qa-rules", json=asked))["question"]
    multiline = await admin.post("/qa-rules", json=rule | {"reply": "第一行\n第二行"})
    assert multiline.status_code == 201, multiline.text
    patched = await admin.patch(f"/qa-rules/{multiline.json()['id']}", json={"reply": "\x00"})
    assert problems(patched) == {"reply": "不能包含控制字符"}
    schedule = {
        "script_key": "day1\x00",
        "trigger": {"type": "cron", "cron": "0 21 * * *"},
        "target": {"type": "cohort_groups"},
    }
    assert problems(await admin.post("/schedules", json=schedule)) == {"script_key": "格式不正确"}
    assert (await admin.get("/qa-rules")).json()["total"] == 1
    assert (await admin.get("/schedules")).json()["total"] == 0


class _PgError(Exception):
    """Stands for a driver error as asyncpg's adapter raises it: a SQLSTATE on `pgcode`."""

    def __init__(self, pgcode: str) -> None:
        super().__init__(f"SQLSTATE {pgcode}")
        self.pgcode = pgcode


@pytest.mark.parametrize(("pgcode", "status"), [("22021", 422), ("22P02", 422), ("40001", None)])
def test_a_data_exception_the_driver_reports_plainly_is_a_422(
    pgcode: str, status: int | None
) -> None:
    error = DBAPIError("INSERT …", {}, _PgError(pgcode))
    response = _as_admin_error(error)
    # Class 22 (bad value) is the client's fault; anything else stays a server error.
    assert (response.status_code if response is not None else None) == status
