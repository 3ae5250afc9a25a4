"""Rendering scripts into OutMessages."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from app.channels.messages import Article
from scripts_library.errors import ScriptValidationError
from scripts_library.images import ImageError, ImageLoader
from scripts_library.loader import DEFAULT_PACK, read_pack
from scripts_library.models import ScriptContent
from scripts_library.render import render
from scripts_library.validate import find_problems
from scripts_library.variables import SAMPLE, LeaderboardEntry, RenderContext, sample_context

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def content(
    msgtype: str, body: str = "", attachments: tuple[dict[str, str], ...] = ()
) -> ScriptContent:
    return ScriptContent("测试", "daily", msgtype, body, attachments)


def test_text_and_markdown_keep_their_type() -> None:
    context = RenderContext(student_name="小周", streak=4)
    message = render(content("text", "{{ student_name }}连续打卡 {{ streak }} 天\n"), context)
    assert (message.msgtype, message.content) == ("text", "小周连续打卡 4 天")
    message = render(content("markdown", "**{{ student_name }}**"), context)
    assert (message.msgtype, message.content) == ("markdown", "**小周**")


def test_loops_leave_no_blank_lines() -> None:
    body = (
        "榜单\n{% for e in leaderboard %}\n"
        "{{ loop.index }}. {{ e.name }} {{ e.points }}\n{% endfor %}\n完"
    )
    board = (LeaderboardEntry("甲", 9), LeaderboardEntry("乙", 7))
    message = render(content("text", body), RenderContext(leaderboard=board))
    assert message.content == "榜单\n1. 甲 9\n2. 乙 7\n完"


def test_news_renders_every_article_field() -> None:
    article = {
        "title": "{{ student_name }}的学习页",
        "description": "第 {{ day }} 天",
        "url": "{{ h5_url }}",
        "picurl": "https://img.example.com/{{ day }}.png",
    }
    message = render(content("news", attachments=(article,)), SAMPLE)
    assert message.articles == (
        Article(
            title="小林的学习页",
            url=SAMPLE.h5_url or "",
            description="第 3 天",
            picurl="https://img.example.com/3.png",
        ),
    )


def test_image_is_loaded_from_the_content_folder(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "cert.png").write_bytes(PNG)
    script = content("image", attachments=({"path": "images/cert.png"},))
    loader = ImageLoader(root=tmp_path)
    assert render(script, SAMPLE, images=loader).image == PNG
    assert find_problems(script, images=loader) == []


def test_image_paths_outside_the_content_folder_are_refused(tmp_path: Path) -> None:
    (tmp_path / "secret.png").write_bytes(PNG)
    root = tmp_path / "content"
    root.mkdir()
    with pytest.raises(ImageError, match="不在内容目录"):
        ImageLoader(root=root)("../secret.png")
    problems = find_problems(
        content("image", attachments=({"path": "missing.png"},)), images=ImageLoader(root=root)
    )
    assert [p.field for p in problems] == ["attachments[0]"]
    assert "读不到图片" in problems[0].message


def test_image_urls_are_fetched_through_the_given_client() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/ok.png":
            return httpx.Response(200, content=PNG)
        return httpx.Response(404)

    loader = ImageLoader(client=httpx.Client(transport=httpx.MockTransport(handler)))
    assert loader("https://img.example.com/ok.png") == PNG
    with pytest.raises(ImageError, match="HTTP 404"):
        loader("https://img.example.com/gone.png")
    small = ImageLoader(client=httpx.Client(transport=httpx.MockTransport(handler)), max_bytes=8)
    with pytest.raises(ImageError, match="超过 8 字节"):
        small("https://img.example.com/ok.png")


def test_an_image_that_is_not_png_or_jpeg_fails_validation(tmp_path: Path) -> None:
    (tmp_path / "a.gif").write_bytes(b"GIF89a" + b"\x00" * 10)
    script = content("image", attachments=({"path": "a.gif"},))
    problems = find_problems(script, images=ImageLoader(root=tmp_path))
    assert {p.message for p in problems} == {"图片必须是 PNG 或 JPG 格式。"}


def test_sample_context_takes_overrides_and_refuses_unknown_names() -> None:
    context = sample_context(
        {"student_name": "阿May", "leaderboard": [{"name": "甲", "points": 3}]}
    )
    assert context.student_name == "阿May"
    assert context.leaderboard == (LeaderboardEntry("甲", 3),)
    assert context.day == SAMPLE.day
    with pytest.raises(ScriptValidationError) as caught:
        sample_context({"studnet_name": "x"})
    assert caught.value.problems[0].field == "context.studnet_name"


def test_the_daily_tip_changes_with_the_day() -> None:
    (tip,) = [e.content for e in read_pack([DEFAULT_PACK]) if e.key == "daily_tip"]
    texts = {render(tip, sample_context({"day": day})).content for day in range(1, 8)}
    assert len(texts) == 7


def test_the_checkin_reminder_speaks_to_a_broken_streak_kindly() -> None:
    (reminder,) = [e.content for e in read_pack([DEFAULT_PACK]) if e.key == "checkin_reminder"]
    assert "连续打卡 3 天" in render(reminder, SAMPLE).content
    fresh = render(reminder, sample_context({"streak": 0})).content
    assert "重新开始" in fresh
    assert "连续打卡 0 天" not in fresh
