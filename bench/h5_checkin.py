"""H5 check-in benchmark: 1,000 students each open their personal page and check in with
one 200 KB image, 50 at a time, against `uvicorn app.main:app` (one worker).

    python bench/h5_checkin.py           # SQLite; PostgreSQL too when
                                         # CAMPBOT_BENCH_POSTGRES_URL is set

For each backend: a fresh schema, one cohort on its day 1 (by the real clock) with 1,000
students and their signed links, then the server, started in a temp folder (so its images
go to that folder's `uploads/`). 50 workers, each with one keep-alive connection, take the
next student as soon as the last is done (a closed loop: it measures capacity): GET the
page, then POST the check-in form (text + one PNG of ~200 KB, unique per student). Each
image is made just before its POST (stored PNG of random pixels, ~1 ms), so the load
generator holds no 200 MB of images.

It is a benchmark, not a test: it prints figures and exits 1 only when correctness fails
(an error answer, an entry or a file missing or doubled), never for a missed speed target.
"""

# A script that reports by printing.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import asyncio
import io
import random
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import httpx
from PIL import Image
from sqlalchemy import func, insert, select

# Run as `python bench/h5_checkin.py`: the repo root is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._support import (  # after the sys.path line above
    AES_KEY,
    CORP_ID,
    HOST,
    TOKEN,
    Server,
    add_backend_option,
    backends,
    percentile,
    reset_postgres,
    server_env,
)

if TYPE_CHECKING:
    from fastapi import FastAPI
    from sqlalchemy.ext.asyncio import AsyncEngine

STUDENTS = 1000
CONCURRENCY = 50
# Extra students of the same cohort, not in the load: the SQL probe's (see `_probe`).
PROBE_STUDENTS = 5
SIDE = 260  # 260 × 260 RGB, stored: 202,800 bytes of pixels, a ~200 KB PNG
TZ = "Asia/Shanghai"
REQUEST_TIMEOUT_S = 60.0
TARGET_P99_MS = {"page": 1000.0, "submit": 2000.0}
TARGET_RSS_MB = 300.0


@dataclass(slots=True)
class Load:
    page_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0
    image_bytes: int = 0


@dataclass(slots=True)
class Check:
    entries: int = 0
    members_with_entry: int = 0
    files: int = 0
    missing_files: int = 0
    streak_one: int = 0


@dataclass(slots=True)
class Probe:
    """SQL statements per request, counted in-process (`_probe`)."""

    page: list[int] = field(default_factory=list)
    submit: list[int] = field(default_factory=list)
    page_sql: list[str] = field(default_factory=list)  # the last page's statements
    submit_sql: list[str] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class Result:
    name: str
    load: Load
    check: Check
    rss_start_mb: float
    rss_peak_mb: float
    server_cpu_s: float
    problems: Counter[str]
    probe: Probe | None = None

    @property
    def correct(self) -> bool:
        c = self.check
        return (
            not self.load.errors
            and c.entries == STUDENTS
            and c.members_with_entry == STUDENTS
            and c.files == STUDENTS
            and c.missing_files == 0
            and (self.probe is None or not self.probe.errors)
        )


# --------------------------------------------------------------------------- setup


async def _prepare(url: str) -> tuple[list[str], list[str]]:
    """A fresh schema, one cohort on day 1 with STUDENTS + PROBE_STUDENTS members; answers
    the load's tokens and the probe's."""
    import app.main  # noqa: F401 - registers every model module, as the server has them
    from app.admin import h5_tokens
    from app.admin.models import Cohort, CohortMember
    from app.db import Base, create_engine, create_sessionmaker
    from app.models import Member

    if url.startswith("postgresql"):
        await reset_postgres(url)
    engine = create_engine(url)
    now = datetime.now(UTC)
    camp_date = (now.astimezone(ZoneInfo(TZ)) - timedelta(hours=4)).date()  # 04:00 boundary
    try:
        async with engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        async with create_sessionmaker(engine)() as session:
            cohort = Cohort(
                name="bench 期",
                camp="压测训练营",
                start_date=camp_date - timedelta(days=1),
                days=7,
                channel_state="bench",
                timezone=TZ,
                created_at=now,
                updated_at=now,
            )
            session.add(cohort)
            await session.flush()
            rows = [
                {
                    "external_userid": f"wmBench{n:05d}",
                    "name": f"学员{n}",
                    "status": "active",
                    "created_at": now,
                    "updated_at": now,
                }
                for n in range(STUDENTS + PROBE_STUDENTS)
            ]
            ids = list(
                (await session.execute(insert(Member).returning(Member.id), rows)).scalars()
            )
            await session.execute(
                insert(CohortMember),
                [{"member_id": i, "cohort_id": cohort.id, "joined_at": now} for i in ids],
            )
            tokens = await h5_tokens.tokens_for(session=session, member_ids=ids, now=now)
            await session.commit()
        return [tokens[i] for i in ids[:STUDENTS]], [tokens[i] for i in ids[STUDENTS:]]
    finally:
        await engine.dispose()


def _image(student: int, pixels: bytes) -> bytes:
    """A stored (uncompressed) PNG, different for every student."""
    unique = student.to_bytes(4, "big") * 3
    buffer = io.BytesIO()
    Image.frombytes("RGB", (SIDE, SIDE), unique + pixels[len(unique) :]).save(
        buffer, format="PNG", compress_level=0
    )
    return buffer.getvalue()


# --------------------------------------------------------------------------- load


async def _student(
    client: httpx.AsyncClient, n: int, token: str, pixels: bytes, load: Load
) -> None:
    started = time.perf_counter()
    try:
        page = await client.get(f"/h5/m/{token}")
    except httpx.HTTPError as exc:
        load.errors[f"page {type(exc).__name__}"] += 1
        return
    load.page_ms.append((time.perf_counter() - started) * 1000)
    if page.status_code != 200:
        load.errors[f"page {page.status_code}"] += 1
        return
    image = _image(n, pixels)
    load.image_bytes += len(image)
    started = time.perf_counter()
    try:
        posted = await client.post(
            f"/h5/m/{token}/checkin",
            data={"text": f"第 1 天打卡：学员{n}的心得", "kind": "checkin"},
            files=[("images", (f"{n}.png", image, "image/png"))],
        )
    except httpx.HTTPError as exc:
        load.errors[f"submit {type(exc).__name__}"] += 1
        return
    load.submit_ms.append((time.perf_counter() - started) * 1000)
    if posted.status_code != 303 or "ok=checkin" not in posted.headers.get("location", ""):
        load.errors[f"submit {posted.status_code}"] += 1


async def _run_load(port: int, tokens: list[str], concurrency: int) -> Load:
    load = Load()
    pixels = random.Random(20260301).randbytes(SIDE * SIDE * 3)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for n in range(len(tokens)):
        queue.put_nowait(n)

    async def worker() -> None:
        async with httpx.AsyncClient(
            base_url=f"http://{HOST}:{port}",
            timeout=REQUEST_TIMEOUT_S,
            limits=httpx.Limits(max_connections=1),
            trust_env=False,
        ) as client:
            while not queue.empty():
                n = queue.get_nowait()
                await _student(client, n, tokens[n], pixels, load)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    load.wall_s = time.perf_counter() - started
    return load


async def _check(url: str, uploads: Path) -> Check:
    from app.db import create_engine
    from app.storage import FolderStorage
    from bots.checkin.models import CheckinEntry, MemberScore

    check = Check()
    storage = FolderStorage(uploads)
    keys = set(storage.keys())
    check.files = len(keys)
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            check.entries = int(await conn.scalar(select(func.count(CheckinEntry.id))) or 0)
            check.members_with_entry = int(
                await conn.scalar(select(func.count(func.distinct(CheckinEntry.member_id)))) or 0
            )
            images = (await conn.execute(select(CheckinEntry.images))).scalars()
            check.missing_files = sum(1 for row in images for key in row if key not in keys)
            check.streak_one = int(
                await conn.scalar(
                    select(func.count()).select_from(MemberScore).where(MemberScore.streak == 1)
                )
                or 0
            )
    finally:
        await engine.dispose()
    return check


# --------------------------------------------------------------------------- SQL probe


def _probe_app(engine: AsyncEngine, url: str, workdir: Path) -> FastAPI:
    """The app as the server runs it, but on `engine` and without its background work."""
    from app.main import create_app
    from app.settings import Settings
    from app.storage import FolderStorage

    settings = Settings(
        WECOM_CORP_ID=CORP_ID,
        WECOM_TOKEN=TOKEN,
        WECOM_ENCODING_AES_KEY=AES_KEY,
        WECOM_API_BASE=f"http://{HOST}:9",
        DATABASE_URL=url,
        _env_file=None,  # type: ignore[call-arg]
    )
    app = create_app(
        settings=settings,
        engine=engine,
        sweeper=False,
        scheduler=False,
        sender=False,
        heartbeat=False,  # counted statements are the requests' only
    )
    app.state.storage = FolderStorage(workdir / "probe-uploads")
    return app


async def _probe_student(
    client: httpx.AsyncClient, probe: Probe, seen: list[str], n: int, token: str, pixels: bytes
) -> None:
    """One probe student's page, then check-in, each with its statements counted."""
    seen.clear()
    page = await client.get(f"/h5/m/{token}")
    probe.page.append(len(seen))
    probe.page_sql = list(seen)
    if page.status_code != 200:
        probe.errors[f"page {page.status_code}"] += 1
    seen.clear()
    posted = await client.post(
        f"/h5/m/{token}/checkin",
        data={"text": f"探针{n}", "kind": "checkin"},
        files=[("images", (f"{n}.png", _image(n, pixels), "image/png"))],
    )
    probe.submit.append(len(seen))
    probe.submit_sql = list(seen)
    if posted.status_code != 303:
        probe.errors[f"submit {posted.status_code}"] += 1


async def _probe(url: str, tokens: list[str], workdir: Path) -> Probe:
    """The same requests as the load's, through the app in this process with a statement
    counter on its engine (the server's own figures stay free of it): per probe student
    the page, then the check-in. Its images go to a folder of their own."""
    from sqlalchemy import event

    from app.db import create_engine

    probe = Probe()
    seen: list[str] = []
    engine = create_engine(url)
    event.listen(
        engine.sync_engine,
        "before_cursor_execute",
        lambda _conn, _cursor, statement, *_: seen.append(" ".join(statement.split())),
    )
    app = _probe_app(engine, url, workdir)
    pixels = random.Random(20260302).randbytes(SIDE * SIDE * 3)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://h5") as client:
                for n, token in enumerate(tokens, start=STUDENTS):
                    await _probe_student(client, probe, seen, n, token, pixels)
    finally:
        await engine.dispose()
    return probe


# --------------------------------------------------------------------------- run


def _rss_mb(pid: int, field_name: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, from Linux /proc; 0 elsewhere."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def bench_backend(
    name: str,
    url: str,
    *,
    workdir: Path,
    concurrency: int,
    profile_to: Path | None = None,
) -> Result:
    print(f"\n[{name}] fresh schema, {STUDENTS} students …", flush=True)
    tokens, probe_tokens = asyncio.run(_prepare(url))
    uploads = workdir / "uploads"
    shutil.rmtree(uploads, ignore_errors=True)
    shutil.rmtree(workdir / "probe-uploads", ignore_errors=True)
    server = Server(
        "app.main:app", env=server_env(url), workdir=workdir, name="h5", profile_to=profile_to
    )
    try:
        pid = server.process.pid
        rss_start = _rss_mb(pid, "VmRSS")
        print(
            f"[{name}] server pid {pid} on port {server.port}; {STUDENTS} × (GET page, POST "
            f"check-in with a ~200 KB image) at concurrency {concurrency} …",
            flush=True,
        )
        cpu = server.cpu_seconds()
        load = asyncio.run(_run_load(server.port, tokens, concurrency))
        server_cpu = server.cpu_seconds() - cpu
        rss_peak = _rss_mb(pid, "VmHWM")
        problems = server.log_problems()
    finally:
        server.stop()
    check = asyncio.run(_check(url, uploads))
    probe = asyncio.run(_probe(url, probe_tokens, workdir))
    return Result(name, load, check, rss_start, rss_peak, server_cpu, problems, probe)


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def _report_probe(probe: Probe, *, show_sql: bool) -> None:
    for label, counts, statements in (
        ("page GET", probe.page, probe.page_sql),
        ("check-in POST", probe.submit, probe.submit_sql),
    ):
        print(
            f"  SQL statements {label}: {sum(counts) / max(1, len(counts)):.1f} per request "
            f"({len(counts)} probed)"
        )
        if show_sql:
            for statement in statements:
                print(f"      {statement[:160]}")
    if probe.errors:
        print("  probe errors   " + ", ".join(f"{k} × {v}" for k, v in probe.errors.items()))


def report(result: Result, *, show_sql: bool = False) -> None:
    load, check = result.load, result.check
    print(f"\n== {result.name} ==")
    for label, key, values in (
        ("page GET", "page", load.page_ms),
        ("check-in POST", "submit", load.submit_ms),
    ):
        p99 = percentile(values, 99)
        print(
            f"  {label:<14} p50 {percentile(values, 50):7.1f} ms   p99 {p99:7.1f} ms   "
            f"max {max(values, default=float('nan')):7.1f} ms   "
            f"(target p99 < {TARGET_P99_MS[key]:.0f} ms: {_mark(p99 < TARGET_P99_MS[key])})"
        )
    students_s = STUDENTS / load.wall_s if load.wall_s else 0.0
    print(f"  wall time      {load.wall_s:7.1f} s    ({students_s:.1f} students/s)")
    print(f"  image size     {load.image_bytes / max(1, len(load.submit_ms)) / 1024:7.1f} KB avg")
    print(
        f"  server RSS     {result.rss_start_mb:7.1f} MB at start, peak {result.rss_peak_mb:.1f}"
        f" MB (target < {TARGET_RSS_MB:.0f}: {_mark(result.rss_peak_mb < TARGET_RSS_MB)})"
    )
    print(
        f"  server CPU     {result.server_cpu_s:7.1f} s    "
        f"({result.server_cpu_s * 1000 / STUDENTS:.1f} ms per student)"
    )
    errors = ", ".join(f"{k} × {v}" for k, v in load.errors.items()) or "none"
    print(f"  errors         {errors}")
    print(
        f"  entries        {check.entries} (members {check.members_with_entry}; "
        f"expected {STUDENTS}): {_mark(check.entries == STUDENTS)}"
    )
    print(
        f"  files          {check.files} in uploads/ (expected {STUDENTS}), "
        f"{check.missing_files} referenced but missing: "
        f"{_mark(check.files == STUDENTS and not check.missing_files)}"
    )
    print(f"  streak 1       {check.streak_one} students")
    if result.probe is not None:
        _report_probe(result.probe, show_sql=show_sql)
    for line, count in result.problems.most_common(10):
        print(f"  server log     {count} × {line}")


def main(argv: list[str] | None = None) -> int:
    global STUDENTS  # a script's one knob, read by the checks
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--students", type=int, default=STUDENTS)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    add_backend_option(parser)
    parser.add_argument("--keep", action="store_true", help="keep the temp dir and print it")
    parser.add_argument(
        "--profile-dir",
        type=Path,
        help="run the server under cProfile, one .prof per backend here "
        "(figures are then inflated by the profiler)",
    )
    parser.add_argument(
        "--show-sql", action="store_true", help="print the SQL of one probed page and check-in"
    )
    args = parser.parse_args(argv)
    if args.profile_dir:
        args.profile_dir.mkdir(parents=True, exist_ok=True)
    STUDENTS = args.students
    workdir = Path(tempfile.mkdtemp(prefix="campbot-h5bench-"))
    results: list[Result] = []
    try:
        for backend in backends(workdir, args.backend, sqlite_name="bench.db"):
            profile_to = None
            if args.profile_dir:
                profile_to = args.profile_dir.resolve() / f"h5-{backend.key}.prof"
            result = bench_backend(
                backend.name,
                backend.url,
                workdir=workdir,
                concurrency=args.concurrency,
                profile_to=profile_to,
            )
            report(result, show_sql=args.show_sql)
            results.append(result)
    finally:
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    print("\n| backend | page p50 / p99 ms | check-in p50 / p99 ms | peak RSS MB | errors | ok |")
    print("|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.name} | {percentile(r.load.page_ms, 50):.0f} / "
            f"{percentile(r.load.page_ms, 99):.0f} "
            f"| {percentile(r.load.submit_ms, 50):.0f} / {percentile(r.load.submit_ms, 99):.0f} "
            f"| {r.rss_peak_mb:.0f} | {sum(r.load.errors.values())} "
            f"| {'yes' if r.correct else 'NO'} |"
        )
    return 0 if all(r.correct for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
