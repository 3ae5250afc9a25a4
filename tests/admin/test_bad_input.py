"""No input makes the admin API answer 500, and a refused request leaves nothing behind."""

from __future__ import annotations

import pytest

from tests.admin.conftest import Admin, problems

COHORT = {"name": "n", "camp": "c", "start_date": "2026-03-02", "days": 7, "channel_state": "s"}


async def test_malformed_bodies(admin: Admin) -> None:
    json_header = {"Content-Type": "application/json"}
    broken = await admin.harness.client.post(
        "/admin/api/cohorts", content=b"{not json", headers=admin.headers | json_header
    )
    assert problems(broken) == {"body": "不是合法的 JSON"}
    # Without a JSON content type the body is not read as JSON at all.
    assert problems(await admin.post("/cohorts", content=b"{}")) == {"body": "应为 JSON 对象"}
    assert problems(await admin.post("/cohorts", json=[COHORT])) == {"body": "应为 JSON 对象"}
    assert problems(await admin.post("/cohorts"))["body"] == "必填"
    assert problems(await admin.post("/cohorts", json=COHORT | {"days": "seven"})) == {
        "days": "应为整数"
    }
    assert (await admin.get("/cohorts")).json()["total"] == 0


@pytest.mark.parametrize(
    "path",
    [
        "/cohorts/abc",
        "/cohorts/0",
        "/cohorts/-1",
        "/cohorts/99999999999999999999999",
        "/groups/2147483648",
        "/members/1.5",
        "/outbox/9223372036854775808",
    ],
)
async def test_bad_ids_are_422(admin: Admin, path: str) -> None:
    response = await admin.get(path)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["field"].endswith("_id")


async def test_values_the_database_could_not_store(admin: Admin) -> None:
    assert problems(await admin.post("/cohorts", json=COHORT | {"name": "a\x00b"})) == {
        "name": "不能包含换行、制表符等控制字符"
    }
    assert problems(await admin.post("/cohorts", json=COHORT | {"camp": "x" * 201})) == {
        "camp": "最多 200 个字符"
    }
    assert problems(await admin.post("/cohorts", json=COHORT | {"days": 10**30}))["days"]
    assert problems(await admin.get("/members", params={"q": "a\x00"})) == {"q": "格式不正确"}
    assert problems(await admin.get("/cohorts", params={"offset": 2**40}))["offset"]
    created = await admin.created("/cohorts", COHORT | {"name": "写作营 🚀 第 3 期"})
    assert created["name"] == "写作营 🚀 第 3 期"


async def test_a_refused_create_writes_no_row(admin: Admin) -> None:
    await admin.cohort(channel_state="s")
    refused = await admin.post("/groups", json={"name": "g", "channel": "robot", "cohort_id": 1})
    assert refused.status_code == 422
    assert (await admin.get("/groups")).json()["total"] == 0
    assert (await admin.get("/audit")).json()["total"] == 1  # the cohort's create only
