"""The poster renderer: size, the name really drawn where it belongs, wrapping, the font."""

from __future__ import annotations

import io

import pytest
from PIL import Image, ImageChops

from bots.xibao import poster

FIELDS = {
    "title": "出单啦",
    "detail": "上架第 3 天出了第一单，销售额 89 美元。",
    "cohort": "跨境电商实战营 · 6 期",
    "date": "2026年3月1日",
}


def _image(png: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_poster_is_a_1080_by_1440_png_under_the_robot_limit() -> None:
    png = poster.xibao_poster(name="张小明", **FIELDS)
    image = _image(png)
    assert (image.format, image.size) == ("PNG", (1080, 1440))
    assert len(png) <= poster.MAX_BYTES


def test_the_name_is_drawn_inside_its_box_and_nowhere_else() -> None:
    with_name = _image(poster.xibao_poster(name="张小明", **FIELDS)).convert("RGB")
    without = _image(poster.xibao_poster(name="", **FIELDS)).convert("RGB")
    changed = ImageChops.difference(with_name, without).getbbox()
    assert changed is not None, "the name left no pixel on the poster"
    left, top, right, bottom = poster.NAME_BOX
    assert left <= changed[0]
    assert top <= changed[1]
    assert changed[2] <= right
    assert changed[3] <= bottom
    # A different name is a different drawing (not a placeholder box).
    other = _image(poster.xibao_poster(name="李四", **FIELDS)).convert("RGB")
    assert ImageChops.difference(with_name, other).getbbox() is not None


def test_a_very_long_name_is_shrunk_or_cut_to_stay_in_its_box() -> None:
    with_name = _image(poster.xibao_poster(name="超长昵称" * 12, **FIELDS)).convert("RGB")
    without = _image(poster.xibao_poster(name="", **FIELDS)).convert("RGB")
    changed = ImageChops.difference(with_name, without).getbbox()
    assert changed is not None
    assert poster.NAME_BOX[0] <= changed[0]
    assert changed[2] <= poster.NAME_BOX[2]


def test_certificate_uses_the_same_renderer() -> None:
    png = poster.certificate(
        name="张小明",
        camp="跨境电商实战营",
        cohort="6 期",
        days=7,
        date="2026年3月6日",
        summary="",
    )
    assert _image(png).size == (1080, 1440)
    xibao = _image(poster.xibao_poster(name="张小明", **FIELDS)).convert("RGB")
    assert ImageChops.difference(_image(png).convert("RGB"), xibao).getbbox() is not None


def test_wrap_keeps_words_whole_and_punctuation_off_line_starts() -> None:
    font = poster._font(44)
    text = "上架第三天出了第一单，销售额八十九美元。Amazon listing optimization works"
    lines = poster.wrap(text, font, 400, max_lines=10)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
    assert all(not line.startswith(("，", "。")) for line in lines)
    for word in ("Amazon", "listing", "optimization", "works"):
        assert any(word in line for line in lines), f"{word} was split across lines"


def test_wrap_ends_in_an_ellipsis_when_it_does_not_fit() -> None:
    lines = poster.wrap("坚持" * 200, poster._font(44), 400, max_lines=3)
    assert len(lines) == 3
    assert lines[-1].endswith("…")


def test_characters_the_font_lacks_are_left_off() -> None:
    assert poster.drawable("🎉 张小明 🎉") == "张小明"


def test_no_cjk_font_is_an_error_naming_the_package() -> None:
    latin = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"  # fontconfig's Latin fallback
    search = poster.FontSearch(fc_pattern=None, paths=("/nonexistent/wqy-microhei.ttc", latin))
    with pytest.raises(poster.FontMissingError, match="fonts-wqy-microhei") as missing:
        poster.find_cjk_font(search)
    assert latin in str(missing.value)  # says where it looked


def test_the_font_search_can_be_changed_and_restored() -> None:
    poster.use_font_search(poster.FontSearch(fc_pattern=None, paths=()))
    try:
        with pytest.raises(poster.FontMissingError):
            poster.xibao_poster(name="张", title="出单", detail="", cohort="", date="")
    finally:
        poster.use_font_search(None)
    assert poster.find_cjk_font()  # the system's font again


def test_the_installed_font_draws_chinese() -> None:
    path = poster.find_cjk_font()
    assert poster._has_glyphs(path, "喜报结营证书")
