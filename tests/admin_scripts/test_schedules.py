"""`/admin/api/schedules` end to end: a camp set up over HTTP, its calendar, a moved start
date, 立即发送, and a script edited mid-camp changing the next push."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.clock import ManualClock
from schedules.runner import fire_due
from tests.admin_scripts.conftest import TZ, Api, problems, script_body

DAY1_0800 = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # day 1 08:00 Shanghai; T0 is 39 h before
DAY1 = {"type": "cohort_day", "day": 1, "time": "08:00"}
EDIT = {"title": "第1天任务", "msgtype": "text", "category": "daily", "note": "改口径"}


async def camp(api: Api) -> int:
    """A cohort starting 2026-03-02 with two robot groups, and a script; the cohort's id."""
    cohort = await api.created(
        "/cohorts",
        {
            "name": "6 期",
            "camp": "跨境电商实战营",
            "start_date": "2026-03-02",
            "days": 7,
            "channel_state": "camp6",
        },
    )
    for n in (1, 2):
        await api.created(
            "/groups",
            {
                "cohort_id": cohort["id"],
                "name": f"6期{n}群",
                "channel": "robot",
                "robot_key": f"robot-{n}",
            },
        )
    await api.created("/scripts", script_body())
    return int(cohort["id"])


async def schedule(api: Api, cohort_id: int, **fields: Any) -> dict[str, Any]:
    body = {
        "script_key": "day1_tasks",
        "cohort_id": cohort_id,
        "trigger": DAY1,
        "target": {"type": "cohort_groups"},
    }
    return await api.created("/schedules", body | fields)


def when(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def outbox_contents(api: Api) -> list[tuple[str, str]]:
    page = await api.ok("GET", "/outbox?limit=200")
    return sorted((row["target"], row["payload"]["message"]["content"]) for row in page["items"])


async def test_create_answers_201_with_next_due_at(api: Api) -> None:
    cohort_id = await camp(api)
    created = await schedule(api, cohort_id)
    assert created["id"] >= 1
    assert when(created["next_due_at"]) == DAY1_0800
    assert await api.ok("GET", f"/schedules/{created['id']}") == created


async def test_invalid_input_names_the_field(api: Api) -> None:
    cohort_id = await camp(api)
    for trigger in (
        {"type": "cohort_day", "day": 1, "time": "25:00"},
        {"type": "weekly"},
        {"type": "cron", "cron": "not a cron"},
    ):
        response = await api.post(
            "/schedules",
            json={
                "script_key": "day1_tasks",
                "cohort_id": cohort_id,
                "trigger": trigger,
                "target": {"type": "cohort_groups"},
            },
        )
        assert "trigger" in problems(response), trigger
    response = await api.post(
        "/schedules",
        json={
            "script_key": "nope",
            "cohort_id": cohort_id,
            "trigger": DAY1,
            "target": {"type": "cohort_groups"},
        },
    )
    assert "nope" in problems(response)["script_key"]
    assert (await api.ok("GET", "/schedules"))["total"] == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        # Each of these used to answer 500 (or store a schedule that fails when it fires).
        ({"trigger": {"type": "cohort_day", "day": 10**9, "time": "08:00"}}, "trigger"),
        ({"trigger": {"type": "at", "at": "9999-12-31T23:59:59-14:00"}}, "trigger"),
        ({"target": {"type": "groups", "group_ids": ["x"]}}, "target"),
        ({"target": {"type": "members", "filter": [1]}}, "target"),
        ({"target": {"type": "staff", "userids": [{"a": 1}]}}, "target"),
        ({"cohort_id": 2**40}, "cohort_id"),
        ({"enable": False}, "enable"),  # a typo must not leave the schedule enabled
    ],
)
async def test_unusable_schedules_are_refused(
    api: Api, fields: dict[str, Any], field: str
) -> None:
    cohort_id = await camp(api)
    body = {
        "script_key": "day1_tasks",
        "cohort_id": cohort_id,
        "trigger": DAY1,
        "target": {"type": "cohort_groups"},
    }
    assert field in problems(await api.post("/schedules", json=body | fields))
    assert (await api.ok("GET", "/schedules"))["total"] == 0


@pytest.mark.parametrize("field", ["script_key", "trigger", "target", "enabled"])
async def test_a_patch_cannot_null_a_required_field(api: Api, field: str) -> None:
    created = await schedule(api, await camp(api))
    response = await api.patch(f"/schedules/{created['id']}", json={field: None})
    assert problems(response) == {field: "不能为 null"}
    assert await api.ok("GET", f"/schedules/{created['id']}") == created


async def test_the_calendar_lists_what_goes_to_whom_and_when(api: Api) -> None:
    cohort_id = await camp(api)
    created = await schedule(api, cohort_id)
    listed = await api.ok("GET", "/schedules/calendar?hours=40")
    assert listed == [
        {
            "firing_id": listed[0]["firing_id"],
            "schedule_id": created["id"],
            "script_key": "day1_tasks",
            "cohort_id": cohort_id,
            "due_at": listed[0]["due_at"],
            "local_time": "2026-03-03 08:00 (Asia/Shanghai)",
            "targets": ["robot:robot-1", "robot:robot-2"],
            "channels": ["群机器人", "群机器人"],
            "quota_left": None,
        }
    ]
    assert when(listed[0]["due_at"]) == DAY1_0800
    assert await api.ok("GET", "/schedules/calendar?hours=38") == []


async def test_moving_the_cohort_moves_the_schedule(api: Api) -> None:
    cohort_id = await camp(api)
    created = await schedule(api, cohort_id)
    await api.ok("PATCH", f"/cohorts/{cohort_id}", {"start_date": "2026-03-03"})
    moved = await api.ok("GET", f"/schedules/{created['id']}")
    assert when(moved["next_due_at"]) == DAY1_0800 + timedelta(days=1)
    assert await api.ok("GET", "/schedules/calendar?hours=40") == []


async def test_run_now_enqueues_one_message_per_group(api: Api) -> None:
    cohort_id = await camp(api)
    created = await schedule(api, cohort_id)
    fired = await api.ok("POST", f"/schedules/{created['id']}/run")
    assert (fired["status"], fired["enqueued"]) == ("fired", 2)
    assert await outbox_contents(api) == [
        ("robot-1", "6期1群的同学们早！今天是第 -1 天。"),
        ("robot-2", "6期2群的同学们早！今天是第 -1 天。"),
    ]
    # The planned day-1 firing is still ahead.
    assert when((await api.ok("GET", f"/schedules/{created['id']}"))["next_due_at"]) == DAY1_0800


async def test_every_change_is_audited_with_before_and_after(api: Api) -> None:
    cohort_id = await camp(api)
    created = await schedule(api, cohort_id)
    moved = {**DAY1, "time": "09:30"}
    await api.ok("PATCH", f"/schedules/{created['id']}", {"trigger": moved})
    fired = await api.ok("POST", f"/schedules/{created['id']}/run")
    assert (await api.request("DELETE", f"/schedules/{created['id']}")).status_code == 204

    page = await api.ok("GET", f"/audit?resource=schedules&resource_id={created['id']}")
    entries = {e["action"]: e for e in page["items"]}
    assert [e["action"] for e in page["items"]] == ["delete", "run", "update", "create"]
    assert {e["actor"] for e in page["items"]} == {"admin"}
    assert entries["create"]["before"] is None
    assert entries["create"]["after"]["trigger"] == DAY1
    update = entries["update"]
    assert (update["before"]["trigger"], update["after"]["trigger"]) == (DAY1, moved)
    run = entries["run"]
    assert run["before"] is None
    assert run["after"] == {"firing": fired["occurrence"], "enqueued": 2}
    delete = entries["delete"]
    assert (delete["before"]["id"], delete["before"]["trigger"], delete["after"]) == (
        created["id"],
        moved,
        None,
    )


async def test_run_now_of_a_script_the_groups_cannot_fill_is_refused(api: Api) -> None:
    cohort_id = await camp(api)
    # Valid with the sample values, but a group has no student_name to fill in.
    await api.created("/scripts", script_body("personal", body="{{ student_name }}，早"))
    created = await schedule(api, cohort_id, script_key="personal")
    response = await api.post(f"/schedules/{created['id']}/run")
    assert response.status_code == 409, response.text
    assert "student_name" in response.json()["detail"]
    assert await outbox_contents(api) == []


async def test_a_script_edited_mid_camp_changes_the_next_push(
    api: Api, sessions: async_sessionmaker[AsyncSession], clock: ManualClock
) -> None:
    cohort_id = await camp(api)
    await schedule(api, cohort_id)
    await schedule(api, cohort_id, trigger=DAY1 | {"day": 2})

    clock.set(DAY1_0800 + timedelta(seconds=5))
    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
    assert (report.fired, report.enqueued) == (1, 2)
    day1 = await outbox_contents(api)
    assert [content for _, content in day1] == [
        "6期1群的同学们早！今天是第 1 天。",
        "6期2群的同学们早！今天是第 1 天。",
    ]

    clock.advance(timedelta(hours=3))
    new_body = "{{ group_name }}：第 {{ day }} 天的任务已更新，请看群公告。"
    assert (await api.ok("PUT", "/scripts/day1_tasks", EDIT | {"body": new_body}))["version"] == 2

    clock.set(DAY1_0800 + timedelta(days=1, seconds=5))
    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
    assert (report.fired, report.enqueued) == (1, 2)
    day2 = sorted(set(await outbox_contents(api)) - set(day1))
    assert day2 == [
        ("robot-1", "6期1群：第 2 天的任务已更新，请看群公告。"),
        ("robot-2", "6期2群：第 2 天的任务已更新，请看群公告。"),
    ]
