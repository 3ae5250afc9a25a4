"""`/admin/api/qa-rules`: create, list, edit, delete, audited; bad input a 422 in Chinese."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.admin.models import AuditEntry
from tests.admin.conftest import problems
from tests.bots.qa.conftest import Desk


async def test_create_list_patch_delete_and_audit(desk: Desk) -> None:
    created = await desk.rule(patterns=["退款", "退费"], reply="找班主任", priority=5)
    assert created["id"] > 0
    assert (created["mode"], created["block"], created["enabled"], created["hits"]) == (
        "contains",
        True,
        True,
        0,
    )
    await desk.rule(mode="exact", patterns=["你好"], reply="你好呀")

    listed = (await desk.admin.get("/qa-rules", params={"mode": "contains"})).json()
    assert (listed["total"], [r["id"] for r in listed["items"]]) == (1, [created["id"]])

    path = f"/qa-rules/{created['id']}"
    patched = await desk.admin.patch(path, json={"reply": "请联系班主任", "cooldown_s": 60})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["reply"], patched.json()["cooldown_s"]) == ("请联系班主任", 60)
    assert (await desk.admin.delete(path)).status_code == 204
    assert (await desk.admin.get(path)).status_code == 404

    async with desk.sessions() as session:
        entries = (
            await session.scalars(
                select(AuditEntry).where(AuditEntry.resource == "qa-rules").order_by(AuditEntry.id)
            )
        ).all()
    assert [e.action for e in entries] == ["create", "create", "update", "delete"]
    update = entries[2]
    assert update.before is not None
    assert update.after is not None
    assert (update.before["reply"], update.after["reply"]) == ("找班主任", "请联系班主任")


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        ({"patterns": ["[第"], "mode": "regex"}, "patterns[0]", "正则表达式写法有误"),
        ({"patterns": ["ok", "(a+)+$"], "mode": "regex"}, "patterns[1]", "嵌套的重复"),
        ({"patterns": ["(x|x)*y"], "mode": "regex"}, "patterns[0]", "同样的字符开头"),
        ({"patterns": [r"\d+\d+元"], "mode": "regex"}, "patterns[0]", "相邻的"),
        ({"patterns": ["？！ "]}, "patterns[0]", "空格和标点"),
        ({"patterns": []}, "patterns", ""),
        ({"patterns": ["a"], "mode": "fuzzy"}, "mode", ""),
        ({"patterns": ["a"], "reply": None}, "reply", "只填一个"),
        ({"patterns": ["a"], "script_key": "nope", "reply": None}, "script_key", "nope"),
        ({"patterns": ["a"], "cohort_id": 99}, "cohort_id", "不存在"),
        ({"patterns": ["a"], "cooldown_s": -1}, "cooldown_s", ""),
        ({"patterns": ["a"], "typo": 1}, "typo", ""),
    ],
)
async def test_bad_rules_are_refused_naming_the_field(
    desk: Desk, body: dict[str, object], field: str, reason: str
) -> None:
    response = await desk.admin.post("/qa-rules", json={"mode": "contains", "reply": "x"} | body)
    found = problems(response)
    assert field in found, found
    assert reason in found[field]
    assert (await desk.admin.get("/qa-rules")).json()["total"] == 0


async def test_a_patch_that_breaks_the_rule_changes_nothing(desk: Desk) -> None:
    rule = await desk.rule(mode="regex", patterns=[r"几点.*直播"], reply="晚 8 点")
    response = await desk.admin.patch(f"/qa-rules/{rule['id']}", json={"patterns": ["(.*)*"]})
    assert "嵌套的重复" in problems(response)["patterns[0]"]
    stored = (await desk.admin.get(f"/qa-rules/{rule['id']}")).json()
    assert stored["patterns"] == [r"几点.*直播"]
