"""Posters: the 喜报 and the completion certificate (结营证书), drawn as 1080×1440 PNGs.

Chinese needs a CJK font, which CampBot does not ship: the project's setup installs the Debian
package `fonts-wqy-microhei` (./run and the Dockerfile). `find_cjk_font` looks it up with
`fc-match` when fontconfig is there, else at the known paths of the usual CJK packages, and
accepts a font only if it really draws the probe characters — a Latin-only fallback would print
empty boxes on every poster, so a missing font is an error (FontMissingError), never a guess.
Where fonts are looked for is a `FontSearch` (`use_font_search` changes it: tests simulate a
machine without CJK fonts). Characters the font cannot draw (emoji) are left off the poster;
the text message keeps them.
"""

from __future__ import annotations

import asyncio
import io
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TypeVar

from PIL import Image, ImageDraw, ImageFont, ImageOps

from app.errors import CampBotError

WIDTH, HEIGHT = 1080, 1440
MAX_BYTES = 2 * 1024 * 1024  # group robots take images up to 2 MB
FONT_PACKAGE = "fonts-wqy-microhei"
KNOWN_FONTS = (
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
)
PROBE = "喜报结营证书恭喜同学期"
_FC_PATTERN = "sans-serif:lang=zh-cn"

# Where the name goes: fixed, so nothing else moves when a name is longer or shorter.
NAME_BOX = (90, 420, WIDTH - 90, 560)
_MARGIN = 120  # left/right margin of the card's text
_NO_LINE_START = set("，。、；：！？）》」』】,.;:!?)…")


class FontMissingError(CampBotError):
    """No installed font draws Chinese."""


@dataclass(frozen=True, slots=True)
class Theme:
    top: str
    bottom: str
    heading: str
    accent: str
    ink: str = "#3a2a1a"
    card: str = "#fffaf0"


XIBAO = Theme(top="#c8102e", bottom="#ff7a3d", heading="#ffe9a8", accent="#c8102e")
CERTIFICATE = Theme(
    top="#10325c", bottom="#2f7d8c", heading="#f4e2b0", accent="#9c7a2b", card="#fffdf6"
)


@dataclass(frozen=True, slots=True)
class PosterText:
    heading: str  # 喜报 / 结营证书
    name: str  # the student: the biggest text on the poster
    title: str  # the achievement, or what the certificate is for
    detail: str  # a paragraph, wrapped
    cohort: str  # camp + 期
    date: str  # 2026年3月3日


# --------------------------------------------------------------------------- the font


def _has_glyphs(path: str, text: str) -> bool:
    try:
        font = ImageFont.truetype(path, 32)
    except OSError:
        return False
    return all(_drawable_char(font, ch) for ch in text)


def _fc_match(pattern: str) -> str | None:
    fc_match = shutil.which("fc-match")
    if fc_match is None:
        return None
    try:
        found = subprocess.run(
            [fc_match, "-f", "%{file}", pattern],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return found or None


@dataclass(frozen=True, slots=True)
class FontSearch:
    """Where a font that draws Chinese is looked for: fontconfig's match for `fc_pattern`
    (None: fontconfig is not asked), then `paths`, in order."""

    fc_pattern: str | None = _FC_PATTERN
    paths: tuple[str, ...] = KNOWN_FONTS

    def describe(self) -> str:
        looked = ([f"fc-match {self.fc_pattern}"] if self.fc_pattern else []) + list(self.paths)
        return "、".join(looked) or "（无）"


SYSTEM_FONTS = FontSearch()
_search = SYSTEM_FONTS


def use_font_search(search: FontSearch | None) -> None:
    """Look for fonts as `search` says from now on (None: the system's places again)."""
    global _search
    _search = search if search is not None else SYSTEM_FONTS


def find_cjk_font(search: FontSearch | None = None) -> str:
    """The path of an installed font that draws Chinese (FontMissingError if none), looked for
    as `search` (default: `use_font_search`'s, else the system's places) says."""
    return _find_cjk_font(search if search is not None else _search)


@lru_cache(maxsize=8)
def _find_cjk_font(search: FontSearch) -> str:
    found = _fc_match(search.fc_pattern) if search.fc_pattern else None
    for path in [c for c in (found, *search.paths) if c]:
        if Path(path).is_file() and _has_glyphs(path, PROBE):
            return path
    raise FontMissingError(
        f"未安装中文字体（{FONT_PACKAGE}），无法生成海报。请在服务器上安装："
        f"apt-get install -y {FONT_PACKAGE}（已查找：{search.describe()}）"
    )


def _font(size: int) -> ImageFont.FreeTypeFont:
    return _font_at(find_cjk_font(), size)


@lru_cache(maxsize=64)
def _font_at(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size, layout_engine=ImageFont.Layout.BASIC)


_NOTDEF = "\U0010fffd"  # a private-use code point no font draws: its mask is the .notdef box


@lru_cache(maxsize=4096)
def _drawable_char(font: ImageFont.FreeTypeFont, ch: str) -> bool:
    if ch.isspace():
        return True
    mask, missing = font.getmask(ch), font.getmask(_NOTDEF)
    return not (mask.size == missing.size and bytes(mask) == bytes(missing))


def drawable(text: str) -> str:
    """`text` without the characters the poster font cannot draw, spaces tidied."""
    font = _font(32)
    kept = "".join(ch for ch in text if _drawable_char(font, ch))
    return re.sub(r"[ \t]+", " ", kept).strip()


# --------------------------------------------------------------------------- text layout

_TOKEN = re.compile(r"[A-Za-z0-9_@#%&+\-./:']+|\s+|.", re.DOTALL)


def _tokens(text: str) -> Iterator[str]:
    """Latin words and numbers stay whole; every CJK character may end a line."""
    return (m.group(0) for m in _TOKEN.finditer(text))


def wrap(text: str, font: ImageFont.FreeTypeFont, width: float, max_lines: int) -> list[str]:
    """Greedy wrapping to `width` pixels; no line starts with closing punctuation, the last
    line ends in … when the text does not fit."""
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for token in _tokens(paragraph):
            if token == "\n":
                continue
            candidate = line + token
            fits = font.getlength(candidate) <= width
            if fits or not line or token[0] in _NO_LINE_START:
                line = candidate  # punctuation may hang past the edge rather than lead a line
                continue
            lines.append(line.rstrip())
            line = token.lstrip()
        lines.append(line.rstrip())
    lines = [ln for ln in lines if ln] or [""]
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1]
    while last and font.getlength(last + "…") > width:
        last = last[:-1]
    return [*lines[: max_lines - 1], last + "…"]


def _fitting_font(text: str, width: float, largest: int, smallest: int) -> ImageFont.FreeTypeFont:
    size = largest
    while size > smallest and _font(size).getlength(text) > width:
        size -= 4
    return _font(size)


def _centered(
    draw: ImageDraw.ImageDraw,
    y: float,
    text: str,
    font: ImageFont.FreeTypeFont,
    fill: str,
    *,
    bold: int = 0,
) -> None:
    # WenQuanYi has no bold face; a stroke of `bold` pixels in the text colour stands in.
    draw.text(
        (WIDTH / 2, y),
        text,
        font=font,
        fill=fill,
        anchor="mt",
        stroke_width=bold,
        stroke_fill=fill,
    )


# --------------------------------------------------------------------------- the poster


@lru_cache(maxsize=4)
def _background(theme: Theme) -> Image.Image:
    """Gradient, soft circles and the card: the same for every poster of a theme."""
    gradient = Image.linear_gradient("L").resize((WIDTH, HEIGHT))
    image = ImageOps.colorize(gradient, theme.top, theme.bottom).convert("RGB")
    draw = ImageDraw.Draw(image, "RGBA")
    for x, y, r in ((80, 120, 180), (1000, 260, 240), (120, 1320, 220), (980, 1380, 160)):
        draw.ellipse((x - r, y - r, x + r, y + r), fill=(255, 255, 255, 28))
    draw.rounded_rectangle((60, 300, WIDTH - 60, HEIGHT - 150), radius=48, fill=theme.card)
    draw.rounded_rectangle(
        (84, 324, WIDTH - 84, HEIGHT - 174), radius=36, outline=theme.accent, width=3
    )
    return image


def render_poster(text: PosterText, theme: Theme = XIBAO) -> bytes:
    """The poster as PNG bytes (FontMissingError without a CJK font)."""
    image = _background(theme).copy()
    draw = ImageDraw.Draw(image)
    inner = WIDTH - 2 * _MARGIN
    _centered(draw, 110, drawable(text.heading), _font(128), theme.heading, bold=3)
    name = drawable(text.name)
    if name:
        name_font = _fitting_font(name, NAME_BOX[2] - NAME_BOX[0], 120, 56)
        name = wrap(name, name_font, NAME_BOX[2] - NAME_BOX[0], 1)[0]
        _centered(draw, 430, name, name_font, theme.accent, bold=2)
    draw.line((WIDTH / 2 - 160, 600, WIDTH / 2 + 160, 600), fill=theme.accent, width=4)
    y = 650.0
    title_font = _font(64)
    for line in wrap(drawable(text.title), title_font, inner, 2):
        _centered(draw, y, line, title_font, theme.ink, bold=1)
        y += 84
    y += 30
    detail_font = _font(44)
    for line in wrap(drawable(text.detail), detail_font, inner, 6):
        draw.text((_MARGIN, y), line, font=detail_font, fill=theme.ink)
        y += 64
    _centered(draw, HEIGHT - 300, drawable(text.cohort), _font(44), theme.accent)
    _centered(draw, HEIGHT - 236, drawable(text.date), _font(38), theme.ink)
    _centered(draw, HEIGHT - 110, "CampBot 训练营", _font(36), theme.heading)
    return _png(image)


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=6)
    data = out.getvalue()
    if len(data) > MAX_BYTES:  # a robot would refuse it; the design keeps posters far below
        raise ValueError(f"poster is {len(data)} bytes, over {MAX_BYTES}")
    return data


def xibao_poster(*, name: str, title: str, detail: str, cohort: str, date: str) -> bytes:
    return render_poster(PosterText("喜报", name, title, detail, cohort, date), XIBAO)


def certificate(*, name: str, camp: str, cohort: str, days: int, date: str, summary: str) -> bytes:
    """结营证书: `summary` is a line of the student's record (打卡天数, 积分), may be empty."""
    detail = f"完成了「{camp} {cohort}」全部 {days} 天的学习与实践，表现优异，特发此证。"
    if summary:
        detail += "\n" + summary
    return render_poster(
        PosterText("结营证书", name, "恭喜顺利结营", detail, f"{camp} · {cohort}", date),
        CERTIFICATE,
    )


# Drawing a poster takes tens of milliseconds of CPU: it runs off the event loop, in one
# thread, so the fonts Pillow caches are never used by two threads at once.
_T = TypeVar("_T")
_DRAWER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="poster")


async def off_loop(draw: Callable[[], _T]) -> _T:
    return await asyncio.get_running_loop().run_in_executor(_DRAWER, draw)
