"""Cohorts: create, validate, conflict, edit (audited, hooked), delete only when empty."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from app.admin.cohorts.service import CohortChange, CohortHook
from app.admin.errors import Conflict
from app.clock import ManualClock
from app.runtime import Runtime
from tests.admin.conftest import Admin, problems


def add_hook(admin: Admin, name: str, hook: CohortHook) -> None:
    """One more cohort hook after the capabilities' (app.capability.Extensions)."""
    runtime: Runtime = admin.harness.app.state.runtime
    hooks = {**runtime.extensions.cohort_hooks, name: hook}
    runtime.extensions = replace(runtime.extensions, cohort_hooks=hooks)


@pytest.fixture
def changes(admin: Admin) -> list[CohortChange]:
    seen: list[CohortChange] = []

    async def record(change: CohortChange, *, session: AsyncSession) -> None:
        seen.append(change)

    add_hook(admin, "record", record)
    return seen


async def test_create_answers_the_stored_cohort(admin: Admin) -> None:
    created = await admin.cohort()
    assert created["id"] >= 1
    assert created["start_date"] == "2026-03-02"
    assert created["end_date"] == "2026-03-23"
    assert created["timezone"] == "Asia/Shanghai"  # settings.campbot_timezone
    assert created["group_count"] == created["member_count"] == 0
    assert (await admin.get(f"/cohorts/{created['id']}")).json() == created
    listed = (await admin.get("/cohorts")).json()
    assert listed == {"items": [created], "total": 1, "limit": 50, "offset": 0}


@pytest.mark.parametrize(
    ("start_date", "message"),
    [
        ("2026/03/02", "日期格式应为 YYYY-MM-DD"),
        ("2026-3-2", "日期格式应为 YYYY-MM-DD"),
        (20260302, "日期格式应为 YYYY-MM-DD"),
        ("2026-02-30", "没有这一天"),
        ("1970-01-01", "年份应在 2000–2099 之间"),
        (None, "日期格式应为 YYYY-MM-DD"),
    ],
)
async def test_bad_start_date_is_422_naming_the_field(
    admin: Admin, start_date: object, message: str
) -> None:
    response = await admin.post(
        "/cohorts",
        json={"name": "n", "camp": "c", "start_date": start_date, "days": 7, "channel_state": "s"},
    )
    assert problems(response) == {"start_date": message}
    assert (await admin.get("/cohorts")).json()["total"] == 0


async def test_every_bad_field_is_named(admin: Admin) -> None:
    response = await admin.post(
        "/cohorts",
        json={"name": " ", "days": 0, "channel_state": "x" * 31, "timezone": "Mars/Base", "x": 1},
    )
    assert problems(response) == {
        "name": "不能为空",
        "camp": "必填",
        "start_date": "必填",
        "days": "不能小于 1",
        "channel_state": "最多 30 个字符",
        "timezone": "未知的时区（应为 IANA 时区名，如 Asia/Shanghai）",
        "x": "不支持的字段",
    }


async def test_duplicate_channel_state_is_409(admin: Admin) -> None:
    first = await admin.cohort(channel_state="same")
    again = await admin.post(
        "/cohorts",
        json={
            "name": "4期",
            "camp": "c",
            "start_date": "2026-04-01",
            "days": 7,
            "channel_state": "same",
        },
    )
    assert again.status_code == 409
    assert "same" in again.json()["detail"]
    assert str(first["id"]) in again.json()["detail"]
    other = await admin.cohort(channel_state="other")
    moved = await admin.patch(f"/cohorts/{other['id']}", json={"channel_state": "same"})
    assert moved.status_code == 409
    assert (await admin.get("/cohorts")).json()["total"] == 2


async def test_unknown_id_is_404(admin: Admin) -> None:
    for response in [
        await admin.get("/cohorts/42"),
        await admin.patch("/cohorts/42", json={"days": 3}),
        await admin.delete("/cohorts/42"),
    ]:
        assert response.status_code == 404
        assert response.json() == {"detail": "训练营期次 42 不存在。"}


async def test_edit_is_audited_with_actor_and_before_after(
    admin: Admin, clock: ManualClock, changes: list[CohortChange]
) -> None:
    cohort = await admin.cohort()
    clock.advance(timedelta(hours=1))
    response = await admin.patch(
        f"/cohorts/{cohort['id']}", json={"start_date": "2026-03-09", "name": "3期（改期）"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["start_date"] == "2026-03-09"
    assert response.json()["end_date"] == "2026-03-30"

    audit = (await admin.get("/audit", params={"resource": "cohorts"})).json()
    assert audit["total"] == 2
    entry = audit["items"][0]
    assert entry["actor"] == "admin"
    assert entry["action"] == "update"
    assert entry["resource_id"] == str(cohort["id"])
    assert entry["at"] == "2026-03-01T10:00:00Z"
    assert entry["before"]["start_date"] == "2026-03-02"
    assert entry["after"]["start_date"] == "2026-03-09"
    assert (entry["before"]["name"], entry["after"]["name"]) == ("写作营 第 3 期", "3期（改期）")
    assert (await admin.get("/audit", params={"resource": "groups"})).json()["total"] == 0

    assert [(c.action, c.start_date_moved) for c in changes] == [
        ("create", False),
        ("update", True),
    ]


async def test_an_edit_that_changes_nothing_is_not_recorded(
    admin: Admin, changes: list[CohortChange]
) -> None:
    cohort = await admin.cohort()
    same = await admin.patch(f"/cohorts/{cohort['id']}", json={"days": cohort["days"]})
    assert same.status_code == 200
    assert (await admin.get("/audit")).json()["total"] == 1
    assert len(changes) == 1


async def test_patch_refuses_null_and_bad_values(admin: Admin) -> None:
    cohort = await admin.cohort()
    response = await admin.patch(
        f"/cohorts/{cohort['id']}", json={"name": None, "start_date": "next monday"}
    )
    assert problems(response) == {"name": "不能为 null", "start_date": "日期格式应为 YYYY-MM-DD"}


async def test_a_failing_hook_rolls_the_whole_edit_back(admin: Admin) -> None:
    cohort = await admin.cohort()

    async def refuse(change: CohortChange, *, session: AsyncSession) -> None:
        raise Conflict("该期次的推送正在执行，请稍后再改期。")

    add_hook(admin, "refuse", refuse)
    response = await admin.patch(f"/cohorts/{cohort['id']}", json={"start_date": "2026-05-01"})
    assert response.status_code == 409
    assert (await admin.get(f"/cohorts/{cohort['id']}")).json()["start_date"] == "2026-03-02"
    assert (await admin.get("/audit")).json()["total"] == 1  # the create only


async def test_delete_only_when_empty(admin: Admin, changes: list[CohortChange]) -> None:
    cohort = await admin.cohort()
    member = await admin.created("/members", {"userid": "lisi", "cohort_id": cohort["id"]})
    refused = await admin.delete(f"/cohorts/{cohort['id']}")
    assert refused.status_code == 409
    assert "1 名学员" in refused.json()["detail"]

    moved = await admin.patch(f"/members/{member['id']}", json={"cohort_id": None})
    assert moved.status_code == 200
    assert moved.json()["cohort_id"] is None
    assert (await admin.delete(f"/cohorts/{cohort['id']}")).status_code == 204
    assert (await admin.get(f"/cohorts/{cohort['id']}")).status_code == 404
    entry = (await admin.get("/audit", params={"resource": "cohorts"})).json()["items"][0]
    assert entry["action"] == "delete"
    assert entry["after"] is None
    assert [(c.action, c.member_id) for c in changes] == [
        ("create", None),
        ("member_joined", member["id"]),
        ("member_left", member["id"]),
        ("delete", None),
    ]


async def test_member_moves_are_heard_by_the_hooks(
    admin: Admin, changes: list[CohortChange]
) -> None:
    three = await admin.cohort(channel_state="c3")
    four = await admin.cohort(channel_state="c4")
    member = await admin.created("/members", {"userid": "u1", "cohort_id": three["id"]})
    await admin.patch(f"/members/{member['id']}", json={"cohort_id": three["id"]})  # no move
    await admin.patch(f"/members/{member['id']}", json={"cohort_id": four["id"]})
    moves = [(c.action, c.cohort_id) for c in changes if c.member_id == member["id"]]
    assert moves == [
        ("member_joined", three["id"]),
        ("member_left", three["id"]),
        ("member_joined", four["id"]),
    ]


async def test_list_pages_and_filters(admin: Admin) -> None:
    for n in range(5):
        await admin.cohort(
            channel_state=f"s{n}", start_date=f"2026-0{n + 1}-01", camp="A" if n % 2 else "B"
        )
    page = (await admin.get("/cohorts", params={"limit": 2, "offset": 1})).json()
    assert page["total"] == 5
    assert page["limit"] == 2
    assert page["offset"] == 1
    assert [c["start_date"] for c in page["items"]] == ["2026-04-01", "2026-03-01"]
    assert (await admin.get("/cohorts", params={"camp": "A"})).json()["total"] == 2
    assert problems(await admin.get("/cohorts", params={"limit": 0})) == {"limit": "不能小于 1"}
