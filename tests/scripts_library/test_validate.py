"""Validation on save: syntax, variables, sandbox, shape, and every channel's limits."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from scripts_library.errors import ScriptValidationError
from scripts_library.loader import DEFAULT_PACK, read_pack
from scripts_library.models import ScriptContent
from scripts_library.render import render
from scripts_library.validate import find_problems, validate
from scripts_library.variables import NAMES, SAMPLE, VARIABLES


def text(body: str, **changes: Any) -> ScriptContent:
    content = ScriptContent(title="测试", category="daily", msgtype="text", body=body)
    return replace(content, **changes)


def problems_of(content: ScriptContent, **kwargs: object) -> dict[str, list[str]]:
    with pytest.raises(ScriptValidationError) as caught:
        validate(content, **kwargs)  # type: ignore[arg-type]
    found: dict[str, list[str]] = {}
    for problem in caught.value.problems:
        found.setdefault(problem.field, []).append(problem.message)
    return found


def test_a_valid_script_passes() -> None:
    validate(text("{{ student_name }}，今天是第 {{ day }} 天，连续打卡 {{ streak }} 天！"))


def test_syntax_error_names_the_body_and_its_line() -> None:
    found = problems_of(text("第一行\n第二行 {{ student_name }}\n第三行 {% if day %}没有结束"))
    assert list(found) == ["body"]
    assert found["body"][0].startswith("第 3 行语法错误：")


def test_unknown_variable_is_named_with_a_suggestion_and_the_known_ones() -> None:
    found = problems_of(text("你好 {{ student_nmae }}"))
    (message,) = found["body"]
    assert message.startswith("未知变量：student_nmae")
    assert "student_name？" in message
    assert "可用变量：" in message
    assert "leaderboard" in message


def test_loop_variables_and_jinja_globals_are_not_unknown() -> None:
    validate(text("{% for e in leaderboard %}{{ loop.index }} {{ e.name }}\n{% endfor %}"))
    validate(text("{% for i in range(3) %}{{ i }}{% endfor %}"))


def test_render_over_the_robot_limit_is_refused_with_sizes() -> None:
    body = "好" * 700 + "{{ student_name }}"  # 2100 + 6 bytes: over 2048, under 4000
    found = problems_of(text(body))
    messages = found["body"]
    assert any("超过群机器人上限 2048 字节" in m for m in messages)
    assert any("超过应用消息上限 2048 字节" in m for m in messages)
    assert not any("客户群发" in m or "欢迎语" in m for m in messages)
    assert "渲染后 2106 字节" in messages[0]


def test_markdown_is_checked_only_where_the_channel_has_markdown() -> None:
    body = "**" + "好" * 1000 + "**"  # 3004 bytes: over the app's 2048, under the robot's 4096
    found = problems_of(text(body, msgtype="markdown"))
    assert len(found["body"]) == 1
    assert "应用消息上限 2048" in found["body"][0]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("{{ ''.__class__.__mro__ }}", "不允许的操作"),
        ("{{ leaderboard.__class__ }}", "不允许的操作"),
        ("{{ 'x' * 100000 }}", "超过上限（16384 个字符或项"),
        ("{{ 10 ** 100000 }}", "乘方结果太大"),
    ],
)
def test_the_sandbox_refuses_unsafe_template_code(body: str, reason: str) -> None:
    found = problems_of(text(body))
    assert reason in found["body"][0]


def test_news_checks_each_article_field() -> None:
    content = text(
        "",
        msgtype="news",
        attachments=(
            {"title": "{{ camp_name }}", "url": "{{ h5_url }}", "description": "第 {{ day }} 天"},
            {"title": "好" * 50, "url": "ftp://x", "colour": "red"},
        ),
    )
    found = problems_of(content)
    assert set(found) == {"attachments[1].colour"}  # shape first: nothing rendered yet
    content = replace(
        content, attachments=(*content.attachments[:1], {"title": "好" * 50, "url": "x"})
    )
    found = problems_of(content)
    assert any(
        "图文标题为 150 字节，超过群机器人上限 128 字节" in m
        for m in found["attachments[1].title"]
    )
    assert found["attachments[1].url"] == ["链接必须以 http:// 或 https:// 开头。"]


def test_unknown_variable_in_an_article_title_names_that_field() -> None:
    content = text("", msgtype="news", attachments=({"title": "{{ nope }}", "url": "https://a"},))
    assert list(problems_of(content)) == ["attachments[0].title"]


def test_shape_problems_name_their_fields() -> None:
    content = ScriptContent(
        title="",
        category="daily",
        msgtype="voice",
        body="hi",
        schedule_hint={"type": "cohort_day", "day": 1, "time": 1200},
    )
    found = problems_of(content, key="Bad Key")
    assert set(found) == {"key", "title", "msgtype", "schedule_hint.time", "schedule_hint.target"}


def test_text_scripts_take_no_attachments() -> None:
    found = problems_of(text("hi", attachments=({"path": "a.png"},)))
    assert "news" in found["attachments"][0]


def test_a_variable_missing_at_send_time_is_a_render_error() -> None:
    from scripts_library.errors import RenderError
    from scripts_library.variables import RenderContext

    with pytest.raises(RenderError, match="缺少变量：student_name"):
        render(text("你好 {{ student_name }}"), RenderContext(day=1))


def test_every_variable_is_documented_with_a_sample() -> None:
    assert {v.name for v in VARIABLES} == NAMES
    for variable in VARIABLES:
        assert variable.description
        assert variable.sample is not None
    assert set(SAMPLE.variables()) == NAMES


def test_the_default_pack_validates_and_renders_with_the_sample() -> None:
    entries = read_pack([DEFAULT_PACK])
    keys = {entry.key for entry in entries}
    for day in range(1, 8):
        assert {f"day{day}_todolist", f"day{day}_class_reminder"} <= keys
    assert {
        "welcome",
        "group_rules",
        "group_welcome",
        "opening_ceremony",
        "daily_tip",
        "checkin_reminder",
        "leaderboard",
        "xibao",
        "sprint",
        "closing_ceremony",
        "feedback_survey",
    } <= keys
    touch = {e.content.schedule_hint["day"] for e in entries if e.key.startswith("touch_")}  # type: ignore[index]
    assert touch == {1, 2, 3, 5, 7}
    for entry in entries:
        assert find_problems(entry.content, key=entry.key) == [], entry.key
        assert entry.content.schedule_hint, f"{entry.key} states no schedule"
        message = render(entry.content, SAMPLE)
        assert message.content, entry.key
        assert "None" not in message.content, entry.key


def test_the_welcome_carries_the_personal_link() -> None:
    (welcome,) = [e for e in read_pack([Path(DEFAULT_PACK)]) if e.key == "welcome"]
    assert SAMPLE.h5_url is not None
    assert SAMPLE.h5_url in render(welcome.content, SAMPLE).content
