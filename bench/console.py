"""Console page benchmark: every page of the operators' console with 20 cohorts and 2,000
students, p50/p99 server time and CPU per page, on SQLite and PostgreSQL.

    python bench/console.py             # SQLite; PostgreSQL too when
                                        # CAMPBOT_BENCH_POSTGRES_URL is set

For each backend: a fresh migrated schema seeded by `bench/_console_seed.py` (20 cohorts of
100 students on days 0..19 of a 21-day camp, 3 robot groups each, the pack's 28 timed
schedules each, ~20,000 check-ins and homework, 5,000 messages, 5,000 audit entries, Q&A,
喜报), then `uvicorn app.main:app` (one worker). Signed in as a 管理员 (and, for the pages an
assistant opens, as a 助教 of two cohorts), it requests each page WARMUP times, then
SAMPLES times one after another, and reads the server's own `Server-Timing` header
(`app;dur=` the time from the request reaching the console route to its answer, `cpu;dur=`
the process CPU spent meanwhile): the load generator's speed does not enter the figures.

It prints figures next to the target (< 100 ms per page); it exits 1 only when a page
answers anything but 200, never for a missed target.
"""

# A script that reports by printing.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import asyncio
import logging
import re
import sys
import tempfile
import unicodedata
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._console_seed import ADMIN, ASSISTANT, Seeded, seed  # after the sys.path line
from bench._support import (
    Server,
    add_backend_option,
    backends,
    fresh_schema,
    percentile,
    server_env,
)

WARMUP = 3
SAMPLES = 60
TARGET_MS = 100.0
_TIMING = re.compile(r"app;dur=([\d.]+), cpu;dur=([\d.]+)")
_LOGIN = re.compile(r'name="csrf_token" value="([^"]+)"')
_CSRF = re.compile(r'"X-CSRF-Token": "([^"]+)"')


@dataclass(frozen=True, slots=True)
class Figures:
    page: str
    p50: float
    p99: float
    cpu: float
    status: int


def pages(s: Seeded) -> list[tuple[str, str, str]]:
    """(who, name, path) of every page measured."""
    c, busy = s.cohort_ids[0], s.cohort_ids[-1]
    admin = [
        ("今日", "/console/"),
        ("期次", "/console/cohorts"),
        ("期次·概览", f"/console/cohorts/{busy}"),
        ("期次·群", f"/console/cohorts/{busy}/groups"),
        ("期次·学员", f"/console/cohorts/{busy}/members"),
        ("学员", f"/console/members/{s.member_id}"),
        ("话术库", "/console/scripts"),
        ("话术编辑", "/console/scripts/day1_todolist"),
        ("话术版本", "/console/scripts/day1_todolist/versions"),
        ("日程", f"/console/schedules?cohort_id={busy}"),
        ("定时发送", f"/console/schedules/{s.schedule_id}"),
        ("发送日历 48h", "/console/schedules/calendar?hours=48"),
        ("打卡与作业", "/console/checkins?status=unreviewed"),
        ("打卡规则", f"/console/checkins/rules/{c}"),
        ("喜报", "/console/xibao"),
        ("问答", "/console/qa"),
        ("数据", f"/console/stats?cohort_id={busy}"),
        ("数据·各群与助教", f"/console/stats/{busy}/slices"),
        ("数据·留存与连续", f"/console/stats/{busy}/shape"),
        ("数据·打卡率图", f"/console/stats/{busy}/chart.svg"),
        ("发送记录", "/console/outbox"),
        ("发送记录·失败", "/console/outbox?status=dead"),
        ("操作日志", "/console/audit"),
        ("账号", "/console/accounts"),
    ]
    assistant = [("今日（助教）", "/console/"), ("打卡与作业（助教）", "/console/checkins")]
    return [("admin", *p) for p in admin] + [("assistant", *p) for p in assistant]


async def _signed_in(base: str, username: str, password: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, trust_env=False, timeout=60)
    form = await client.get("/console/login")
    token = _LOGIN.search(form.text)
    assert token is not None
    data = {"username": username, "password": password, "csrf_token": token.group(1)}
    answer = await client.post("/console/login", data=data)
    assert answer.status_code == 303, answer.text
    return client


Request = Callable[[], Awaitable[httpx.Response]]


async def _measure(name: str, request: Request) -> Figures:
    """The server's own time and CPU for `request`, SAMPLES times after WARMUP; anything but
    a 200 (an error, a redirect to the sign-in page) is the status reported."""
    took, cpu, status = [], [], 200
    for n in range(WARMUP + SAMPLES):
        answer = await request()
        status = answer.status_code if answer.status_code != 200 else status
        found = _TIMING.search(answer.headers.get("server-timing", ""))
        if n >= WARMUP and found:
            took.append(float(found.group(1)))
            cpu.append(float(found.group(2)))
    return Figures(name, percentile(took, 50), percentile(took, 99), percentile(cpu, 50), status)


async def _preview(client: httpx.AsyncClient) -> Figures:
    """The editor's htmx preview: a trial render in a worker process, and back."""
    home = await client.get("/console/")
    found = _CSRF.search(home.text)
    assert found is not None
    headers = {"X-CSRF-Token": found.group(1), "HX-Request": "true"}
    draft = {
        "title": "t",
        "category": "daily",
        "msgtype": "text",
        "body": "{{ student_name }}，第 {{ day }} 天加油",
        "preview_member": "学员1-1",
    }
    post = partial(client.post, "/console/scripts/day1_todolist/preview", headers=headers)
    return await _measure("话术预览（htmx）", partial(post, data=draft))


async def _run(base: str, seeded: Seeded) -> list[Figures]:
    clients = {
        "admin": await _signed_in(base, *ADMIN),
        "assistant": await _signed_in(base, *ASSISTANT),
    }
    try:
        figures = [
            await _measure(name, partial(clients[who].get, path))
            for who, name, path in pages(seeded)
        ]
        figures.append(await _preview(clients["admin"]))
        return figures
    finally:
        for client in clients.values():
            await client.aclose()


def _pad(text: str, width: int) -> str:
    """`text` padded to `width` terminal columns (a Chinese character takes two)."""
    columns = sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)
    return text + " " * max(0, width - columns)


def _report(name: str, seeded: Seeded, figures: list[Figures]) -> bool:
    print(
        f"\n{name}: {len(seeded.cohort_ids)} cohorts, 2,000 students, {seeded.entries:,} "
        f"check-ins and homework; {SAMPLES} requests per page (server time, Server-Timing)"
    )
    print(
        f"  {'page':<22}{'p50 ms':>9}{'p99 ms':>9}{'CPU p50 ms':>12}   target < {TARGET_MS:.0f} ms"
    )
    ok = True
    for f in figures:
        mark = "ok" if f.p99 < TARGET_MS else "MISSED"
        error = "" if f.status == 200 else f"  (answered {f.status})"
        print(f"  {_pad(f.page, 22)}{f.p50:>9.1f}{f.p99:>9.1f}{f.cpu:>12.1f}   {mark}{error}")
        ok = ok and f.status == 200
    return ok


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_backend_option(parser)
    args = parser.parse_args()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    ok = True
    with tempfile.TemporaryDirectory(prefix="campbot-bench-console-") as tmp:
        workdir = Path(tmp)
        for backend in backends(workdir, args.backend, sqlite_name="console.db"):
            asyncio.run(fresh_schema(backend.url, backend.sqlite_file))
            seeded = asyncio.run(seed(backend.url))
            server = Server(
                "app.main:app", env=server_env(backend.url), workdir=workdir, name=backend.key
            )
            try:
                figures = asyncio.run(_run(f"http://127.0.0.1:{server.port}", seeded))
            finally:
                server.stop()
            ok = _report(backend.name, seeded, figures) and ok
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
