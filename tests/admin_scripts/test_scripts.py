"""`/admin/api/scripts`: create, validation, versions, diff, rollback, preview, audit."""

from __future__ import annotations

from tests.admin_scripts.conftest import Api, problems, script_body

GREETING = "{{ student_name }}，今天是第 {{ day }} 天，记得打卡。"


async def test_create_answers_201_with_the_stored_script(api: Api) -> None:
    created = await api.created("/scripts", script_body(note="初稿"))
    assert created["id"] >= 1
    assert (created["key"], created["version"], created["msgtype"]) == ("day1_tasks", 1, "text")
    assert created["attachments"] == []
    assert created["schedule_hint"] is None
    assert await api.ok("GET", "/scripts/day1_tasks") == created

    await api.created("/scripts", script_body("welcome", category="welcome"))
    listed = await api.ok("GET", "/scripts")
    assert (listed["total"], [s["key"] for s in listed["items"]]) == (2, ["day1_tasks", "welcome"])
    only = await api.ok("GET", "/scripts?category=welcome")
    assert (only["total"], [s["key"] for s in only["items"]]) == (1, ["welcome"])
    history = await api.ok("GET", "/scripts/day1_tasks/versions")
    assert [(v["version"], v["author"], v["note"]) for v in history["items"]] == [
        (1, "admin", "初稿")
    ]


async def test_a_syntax_error_names_the_body_and_its_line(api: Api) -> None:
    response = await api.post("/scripts", json=script_body(body="早上好\n{{ student_name "))
    found = problems(response)
    assert "body" in found
    assert "第 2 行" in found["body"]
    assert (await api.get("/scripts/day1_tasks")).status_code == 404  # nothing stored


async def test_every_problem_is_listed_in_one_answer(api: Api) -> None:
    response = await api.post(
        "/scripts",
        json=script_body(key="Bad Key", title=" ", category="", body="{{ studnet_name }}"),
    )
    found = problems(response)
    assert set(found) == {"key", "title", "category", "body"}
    assert "未知变量：studnet_name" in found["body"]
    assert "student_name" in found["body"]  # the suggestion


async def test_an_unknown_variable_is_refused(api: Api) -> None:
    found = problems(await api.post("/scripts", json=script_body(body="{{ nickname }}，早")))
    assert "未知变量：nickname" in found["body"]


async def test_a_text_over_the_robot_limit_after_rendering_is_refused(api: Api) -> None:
    # 700 × 3 bytes plus the sample name: over 2048 bytes only once rendered.
    body = "{{ student_name }}" + "字" * 700
    assert len(body.encode()) < 2200
    found = problems(await api.post("/scripts", json=script_body(body=body)))
    assert "群机器人上限 2048 字节" in found["body"]


async def test_a_taken_key_is_409_and_an_unknown_one_404(api: Api) -> None:
    await api.created("/scripts", script_body())
    duplicate = await api.post("/scripts", json=script_body(title="另一个"))
    assert duplicate.status_code == 409
    assert "day1_tasks" in duplicate.json()["detail"]

    update = {k: v for k, v in script_body().items() if k != "key"}
    for method, path, body in [
        ("GET", "/scripts/nope", None),
        ("PUT", "/scripts/nope", update),
        ("GET", "/scripts/nope/versions", None),
        ("GET", "/scripts/day1_tasks/versions/9", None),
        ("GET", "/scripts/day1_tasks/diff?a=1&b=9", None),
        ("POST", "/scripts/nope/rollback", {"version": 1}),
        ("POST", "/scripts/day1_tasks/rollback", {"version": 9}),
        ("POST", "/scripts/nope/preview", {}),
    ]:
        response = await api.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert "找不到" in response.json()["detail"]


async def test_edit_versions_diff_and_rollback(api: Api) -> None:
    first = await api.created("/scripts", script_body(body=GREETING))
    edit = {
        "title": "第1天任务",
        "msgtype": "text",
        "body": GREETING.replace("记得打卡", "今晚 9 点前打卡"),
        "category": "daily",
        "note": "改了截止时间",
    }
    second = await api.ok("PUT", "/scripts/day1_tasks", edit)
    assert (second["id"], second["version"], second["body"]) == (first["id"], 2, edit["body"])
    # Saving the same content again stores nothing.
    same = await api.ok("PUT", "/scripts/day1_tasks", edit | {"note": "再存一次"})
    assert same["version"] == 2

    history = await api.ok("GET", "/scripts/day1_tasks/versions")
    assert [(v["version"], v["note"]) for v in history["items"]] == [
        (2, "改了截止时间"),
        (1, ""),
    ]
    assert history["total"] == 2
    assert set(history["items"][0]) == {"version", "author", "note", "created_at"}

    diff = await api.ok("GET", "/scripts/day1_tasks/diff?a=1&b=2")
    assert (diff["a"], diff["b"]) == (1, 2)
    assert "-body: '{{ student_name }}，今天是第 {{ day }} 天，记得打卡。'" in diff["diff"]
    assert "今晚 9 点前打卡" in diff["diff"]

    rolled = await api.ok("POST", "/scripts/day1_tasks/rollback", {"version": 1})
    assert (rolled["version"], rolled["body"]) == (3, GREETING)
    third = await api.ok("GET", "/scripts/day1_tasks/versions/3")
    assert third["note"] == "回滚到第 1 版"
    one = await api.ok("GET", "/scripts/day1_tasks/versions/1")
    fields = ("title", "msgtype", "body", "category", "attachments", "schedule_hint")
    assert {f: third[f] for f in fields} == {f: one[f] for f in fields}
    assert (await api.ok("GET", "/scripts/day1_tasks/diff?a=1&b=3"))["diff"] == ""
    # Rolling back to what is already current stores nothing.
    again = await api.ok("POST", "/scripts/day1_tasks/rollback", {"version": 1})
    assert again["version"] == 3


async def test_an_invalid_edit_stores_nothing(api: Api) -> None:
    await api.created("/scripts", script_body())
    response = await api.put(
        "/scripts/day1_tasks",
        json={"title": "x", "msgtype": "video", "body": "{% if %}", "category": "daily"},
    )
    assert set(problems(response)) == {"msgtype", "body"}
    assert (await api.ok("GET", "/scripts/day1_tasks"))["version"] == 1


async def test_preview_with_the_sample_context_and_overrides(api: Api) -> None:
    await api.created("/scripts", script_body(body=GREETING))
    sample = await api.ok("POST", "/scripts/day1_tasks/preview")
    assert (sample["msgtype"], sample["content"]) == ("text", "小林，今天是第 3 天，记得打卡。")
    assert sample["content_bytes"] == len(sample["content"].encode())
    assert [(c["channel"], c["fits"], c["reason"]) for c in sample["channels"]] == [
        ("robot", True, None),
        ("appchat", True, None),
        ("customer", True, None),
    ]
    chosen = await api.ok(
        "POST", "/scripts/day1_tasks/preview", {"context": {"student_name": "小王", "day": 5}}
    )
    assert chosen["content"] == "小王，今天是第 5 天，记得打卡。"

    # A value too long for a robot message: the per-channel answer says which channels refuse.
    long = await api.ok(
        "POST", "/scripts/day1_tasks/preview", {"context": {"student_name": "长" * 800}}
    )
    checks = {c["channel"]: c for c in long["channels"]}
    assert not checks["robot"]["fits"]
    assert "超过群机器人上限 2048 字节" in checks["robot"]["reason"]
    assert not checks["appchat"]["fits"]
    assert checks["customer"]["fits"]  # mass sends take 4000 bytes

    unknown = await api.post("/scripts/day1_tasks/preview", json={"context": {"nick": "x"}})
    assert "未知变量：nick" in problems(unknown)["context.nick"]
    unset = await api.post("/scripts/day1_tasks/preview", json={"context": {"day": None}})
    assert "day" in problems(unset)["context"]


async def test_preview_for_a_member(api: Api) -> None:
    await api.created("/scripts", script_body(body=GREETING))
    member = await api.created("/members", {"external_userid": "wm-ahua", "name": "阿花"})
    preview = await api.ok("POST", "/scripts/day1_tasks/preview", {"member_id": member["id"]})
    assert preview["content"] == "阿花，今天是第 3 天，记得打卡。"
    missing = await api.post("/scripts/day1_tasks/preview", json={"member_id": 999})
    assert "999" in problems(missing)["member_id"]


async def test_preview_of_markdown_says_mass_sends_refuse_it(api: Api) -> None:
    await api.created(
        "/scripts", script_body("rank", msgtype="markdown", body="**{{ student_name }}** 第一")
    )
    preview = await api.ok("POST", "/scripts/rank/preview", {})
    checks = {c["channel"]: c for c in preview["channels"]}
    assert checks["robot"]["fits"]
    assert checks["appchat"]["fits"]
    assert not checks["customer"]["fits"]
    assert "不支持 markdown" in checks["customer"]["reason"]
    assert checks["customer"]["covers"] == ["customer_group", "customer_single"]


async def test_preview_of_an_old_version(api: Api) -> None:
    await api.created("/scripts", script_body(body="旧的"))
    edit = {"title": "t", "msgtype": "text", "body": "新的", "category": "daily"}
    await api.ok("PUT", "/scripts/day1_tasks", edit)
    old = await api.ok("POST", "/scripts/day1_tasks/preview", {"version": 1})
    assert (old["version"], old["content"]) == (1, "旧的")


async def test_an_edit_is_audited_with_its_author_and_before_after(api: Api) -> None:
    await api.created("/scripts", script_body(body="旧的正文"))
    token = (await api.created("/tokens", {"name": "alice"}))["token"]
    edit = {"title": "第1天任务", "msgtype": "text", "body": "新的正文", "category": "daily"}
    response = await api.client.put(
        "/admin/api/scripts/day1_tasks",
        json=edit,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert response.status_code == 200, response.text

    entries = (await api.ok("GET", "/audit?resource=scripts&resource_id=day1_tasks"))["items"]
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("update", "alice"),
        ("create", "admin"),
    ]
    update = entries[0]
    assert (update["before"]["body"], update["before"]["version"]) == ("旧的正文", 1)
    assert (update["after"]["body"], update["after"]["version"]) == ("新的正文", 2)
    history = await api.ok("GET", "/scripts/day1_tasks/versions")
    assert [v["author"] for v in history["items"]] == ["alice", "admin"]


async def test_a_rollback_is_audited_and_a_save_that_changes_nothing_is_not(api: Api) -> None:
    await api.created("/scripts", script_body(body="旧的正文"))
    edit = {"title": "第1天任务", "msgtype": "text", "body": "新的正文", "category": "daily"}
    await api.ok("PUT", "/scripts/day1_tasks", edit)
    await api.ok("PUT", "/scripts/day1_tasks", edit)  # the same content: no version, no entry
    rolled = await api.ok("POST", "/scripts/day1_tasks/rollback", {"version": 1})
    assert (rolled["version"], rolled["body"]) == (3, "旧的正文")

    entries = (await api.ok("GET", "/audit?resource=scripts&resource_id=day1_tasks"))["items"]
    assert [e["action"] for e in entries] == ["rollback", "update", "create"]
    rollback = entries[0]
    assert (rollback["before"]["body"], rollback["before"]["version"]) == ("新的正文", 2)
    assert (rollback["after"]["body"], rollback["after"]["version"]) == ("旧的正文", 3)
    assert entries[2]["before"] is None
    assert entries[2]["after"]["version"] == 1


async def test_unknown_fields_and_nul_are_refused(api: Api) -> None:
    assert "colour" in problems(await api.post("/scripts", json=script_body(colour="red")))
    assert "body" in problems(await api.post("/scripts", json=script_body(body="a\x00b")))
    assert "title" in problems(await api.post("/scripts", json=script_body(title="a\nb")))
