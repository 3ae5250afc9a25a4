"""The daily check-in rate as an SVG bar chart, drawn by hand (no plotting library).

One slot per camp day — day 0 (开营) to day `total_days` (the last), so `total_days + 1` of
them — and a bar per observed day (`class="bar"`, `data-day`, `data-rate`), its height the
rate times the plot height; axes with 0–100% grid lines, 第 N 天 labels (every k-th day on
long camps, and always today's, the day in progress) and the percentage over each bar when
there is room. Text is escaped, so a cohort name cannot break the XML.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

WIDTH, HEIGHT = 860, 440
LEFT, RIGHT, TOP, BOTTOM = 64, 24, 56, 64
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM
FONT = "'Noto Sans CJK SC','Source Han Sans SC','PingFang SC','Microsoft YaHei',sans-serif"
BAR_COLOR, TODAY_COLOR, GRID_COLOR, TEXT_COLOR = "#3b82f6", "#93c5fd", "#e5e7eb", "#374151"
MAX_X_LABELS = 22  # beyond this, label every k-th day so labels do not overlap


@dataclass(frozen=True, slots=True)
class ChartPoint:
    day: int
    rate: float  # 0..1
    in_progress: bool = False


def bar_height(rate: float) -> float:
    return round(max(0.0, min(rate, 1.0)) * PLOT_H, 2)


def percent(rate: float) -> str:
    return f"{rate * 100:.1f}%"


def _text(x: float, y: float, body: str, *, size: int = 12, anchor: str = "middle") -> str:
    return (
        f'<text x="{x:.2f}" y="{y:.2f}" font-size="{size}" text-anchor="{anchor}" '
        f'fill="{TEXT_COLOR}">{escape(body)}</text>'
    )


def _grid() -> list[str]:
    parts = []
    for step in range(5):  # 0%, 25%, 50%, 75%, 100%
        y = TOP + PLOT_H - PLOT_H * step / 4
        parts.append(
            f'<line x1="{LEFT}" y1="{y:.2f}" x2="{LEFT + PLOT_W}" y2="{y:.2f}" '
            f'stroke="{GRID_COLOR}" stroke-width="1"/>'
        )
        parts.append(_text(LEFT - 8, y + 4, f"{step * 25}%", anchor="end"))
    bottom = TOP + PLOT_H
    parts.append(
        f'<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{bottom}" '
        f'stroke="{TEXT_COLOR}" stroke-width="1"/>'
    )
    parts.append(
        f'<line class="axis" x1="{LEFT}" y1="{bottom}" x2="{LEFT + PLOT_W}" y2="{bottom}" '
        f'stroke="{TEXT_COLOR}" stroke-width="1"/>'
    )
    return parts


def _bar(point: ChartPoint, slot: float, show_value: bool) -> list[str]:
    height = bar_height(point.rate)
    width = round(slot * 0.7, 2)
    x = round(LEFT + slot * point.day + (slot - width) / 2, 2)
    y = round(TOP + PLOT_H - height, 2)
    color = TODAY_COLOR if point.in_progress else BAR_COLOR
    note = "（进行中）" if point.in_progress else ""
    parts = [
        f'<rect class="bar" data-day="{point.day}" data-rate="{point.rate}" x="{x}" y="{y}" '
        f'width="{width}" height="{height}" fill="{color}">'
        f"<title>第 {point.day} 天{note}：{percent(point.rate)}</title></rect>"
    ]
    if show_value:
        parts.append(_text(x + width / 2, y - 5, percent(point.rate), size=11))
    return parts


def _labelled_days(slots: int, today: int | None) -> list[int]:
    """Every k-th day so that labels do not overlap, and today's; a regular label too close
    to today's gives way to it."""
    every = max(1, -(-slots // MAX_X_LABELS))
    days = list(range(0, slots, every))
    if today is None or not 0 <= today < slots:
        return days
    return sorted({today, *(day for day in days if abs(day - today) >= every)})


def _x_labels(slots: int, slot: float, today: int | None) -> list[str]:
    return [
        _text(LEFT + slot * day + slot / 2, TOP + PLOT_H + 18, f"第{day}天", size=11)
        for day in _labelled_days(slots, today)
    ]


def checkin_rate_svg(*, title: str, total_days: int, points: Sequence[ChartPoint]) -> str:
    """The chart as an SVG document (UTF-8 text): days 0..`total_days`."""
    slots = max(total_days, 0) + 1
    slot = PLOT_W / slots
    show_values = slots <= 32
    today = next((point.day for point in points if point.in_progress), None)
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" font-family="{FONT}">',
        f"<title>{escape(title)}</title>",
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="#ffffff"/>',
        _text(WIDTH / 2, 30, title, size=18),
        *_grid(),
        *_x_labels(slots, slot, today),
        _text(LEFT + PLOT_W / 2, HEIGHT - 16, "训练营天数（第 0 天 = 开营）", size=12),
        f'<text x="18" y="{TOP + PLOT_H / 2:.2f}" font-size="12" text-anchor="middle" '
        f'fill="{TEXT_COLOR}" transform={quoteattr(f"rotate(-90 18 {TOP + PLOT_H / 2:.2f})")}>'
        "打卡率</text>",
    ]
    for point in points:
        parts.extend(_bar(point, slot, show_values))
    if not points:
        parts.append(_text(LEFT + PLOT_W / 2, TOP + PLOT_H / 2, "尚未开营，暂无数据", size=16))
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
