"""Poster benchmark: how many 喜报 posters (1080×1440 PNG) one process draws per second, and
the memory it needs doing so.

    python bench/poster.py                 # 300 posters
    python bench/poster.py --posters 1000

Draws each poster as a broadcast does (`bots.xibao.poster.xibao_poster`): a different student name,
title and detail every time (short to the longest that wraps and is cut with …), timing each
one, then a batch of completion certificates. Prints throughput, per-poster latency, PNG sizes
against the robots' 2 MB limit and the process's peak RSS (before drawing, and at the end).
A benchmark, not a test: it exits 1 only if a poster is not a 1080×1440 PNG under 2 MB.
"""

# A script that reports by printing.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import io
import resource
import statistics
import sys
import time
from collections.abc import Callable

from PIL import Image

from bots.xibao import poster

SURNAMES = "张王李赵刘陈杨黄周吴"
GIVEN = ("小明", "思远", "一帆", "Amy", "雨桐", "子轩", "晓雯", "阿杰 Jay", "木子", "大橙子")
TITLES = ("出单啦", "上岸了！拿到心仪公司的 offer", "优秀作业", "连续打卡 21 天", "首月营收破万")
DETAIL = (
    "上架第 3 天出了第一单，销售额 89 美元。从选品到上架，每一步都按课程的方法走，"
    "坚持每天复盘，终于等到了这一刻。感谢助教老师一路的陪伴和点评！"
)


def peak_rss_mib() -> float:
    # Linux reports ru_maxrss in KiB.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _poster(n: int) -> bytes:
    return poster.xibao_poster(
        name=SURNAMES[n % 10] + GIVEN[(n // 10) % 10],
        title=TITLES[n % len(TITLES)],
        detail=DETAIL[: 20 + (n * 37) % (len(DETAIL) * 3)] * (1 + n % 3),
        cohort="跨境电商实战营 · 6 期",
        date=f"2026年3月{1 + n % 28}日",
    )


def _certificate(n: int) -> bytes:
    return poster.certificate(
        name=SURNAMES[n % 10] + GIVEN[(n // 10) % 10],
        camp="跨境电商实战营",
        cohort="6 期",
        days=7,
        date="2026年3月6日",
        summary=f"打卡 {n % 8} 天 · 作业 {n % 6} 次 · 积分 {n * 7 % 200}",
    )


def _run(draw: Callable[[int], bytes], count: int) -> tuple[float, list[float], list[int]]:
    times: list[float] = []
    sizes: list[int] = []
    start = time.perf_counter()
    for n in range(count):
        t = time.perf_counter()
        png = draw(n)
        times.append(time.perf_counter() - t)
        sizes.append(len(png))
        if n % 50 == 0:
            _check(png)
    return time.perf_counter() - start, times, sizes


def _check(png: bytes) -> None:
    image = Image.open(io.BytesIO(png))
    if image.format != "PNG" or image.size != (poster.WIDTH, poster.HEIGHT):
        raise SystemExit(f"bad poster: {image.format} {image.size}")
    if len(png) > poster.MAX_BYTES:
        raise SystemExit(f"poster over the robot limit: {len(png)} bytes")


def _report(what: str, wall: float, times: list[float], sizes: list[int]) -> None:
    ms = sorted(t * 1000 for t in times)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(f"{what}: {len(times)} in {wall:.2f} s")
    print(f"  throughput           {len(times) / wall:8.1f} /s (one process, one thread)")
    p50 = statistics.median(ms)
    mean_kib, max_kib = statistics.mean(sizes) / 1024, max(sizes) / 1024
    print(f"  latency p50 / p99    {p50:8.1f} / {p99:.1f} ms  (max {ms[-1]:.1f})")
    limit = poster.MAX_BYTES // 1024
    print(f"  PNG size mean / max  {mean_kib:8.0f} / {max_kib:.0f} KiB  (robot limit {limit} KiB)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--posters", type=int, default=300)
    args = parser.parse_args()

    print(f"font: {poster.find_cjk_font()}")
    rss_start = peak_rss_mib()
    t = time.perf_counter()
    _poster(0)  # first use: font files, glyph checks, the background
    print(f"first poster (cold): {(time.perf_counter() - t) * 1000:.0f} ms")
    _report("喜报 posters", *_run(_poster, args.posters))
    _report("结营证书", *_run(_certificate, max(args.posters // 3, 1)))
    print(f"peak RSS: {rss_start:.0f} MiB after imports, {peak_rss_mib():.0f} MiB at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
