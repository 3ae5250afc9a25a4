"""Scheduler benchmark: 100 cohorts × 100 schedules due in the same minute, each to its
cohort's 10 robot groups, so one scheduler tick must write 100,000 outbox rows.

    python bench/scheduler.py            # SQLite; PostgreSQL too when
                                         # CAMPBOT_BENCH_POSTGRES_URL is set

Each backend runs in a child process of its own, so the peak RSS reported is that
backend's alone. The child seeds the camp (cohorts, robot groups, one text script with
a few variables, schedules, and their firings planned by the real planner), then calls
the real `fire_due` with a ManualClock standing at the due minute, as the scheduler's
tick would when it wakes at that minute. The clock does not move, so "when" is measured
in real time: a firing's latency is the real time from the moment `fire_due` was called
to the commit of the transaction holding the firing's last outbox row (seen with a
session `after_commit` hook). The due time and the call coincide here, as the scheduler
wakes at the next due firing.

Then, per backend, the lateness part (`bench/_lateness.py`): the real scheduler loop and
sender on the system clock, pushes due one by one to idle robots, each measured from its
due time to its outbox row and to WeCom (the sandbox, in process).

It is a benchmark, not a test: it prints figures beside their targets and exits 1 only
when correctness fails (a row missing, doubled or rendered wrong, a firing not fired, a
second run enqueueing anything), never for a missed speed target.
"""

# A script that reports by printing.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import json
import os
import pstats
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session, SessionTransaction

# Run as `python bench/scheduler.py`: the repo root is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app.admin.models import Cohort, CohortGroup  # the repo's modules: after sys.path above
from app.clock import ManualClock
from app.db import create_engine
from app.models import Group, OutboxMessage
from bench._lateness import measure_lateness, report_lateness
from bench._support import (
    add_backend_option,
    backends,
    fresh_schema,
    machine_ticks,
    percentile,
)
from schedules.models import Firing, FiringStatus, Schedule
from schedules.planner import plan_all
from schedules.runner import fire_due
from schedules.scheduler import SAFETY_TICK_S
from scripts_library.models import Script

TZ = "Asia/Shanghai"
START = date(2026, 3, 2)  # day 0 of every cohort
DUE = datetime(2026, 3, 3, 0, 0, tzinfo=UTC)  # day 1, 08:00 Shanghai: every firing's time
PLANNED_AT = DUE - timedelta(days=1)
SCRIPT_KEY = "bench_morning"
BODY = (
    "{{ group_name }}的同学们早！"
    "今天是{{ camp_name }}第 {{ day }} 天（{{ date }} {{ weekday }}）。"
)
TARGET_P99_S = 2.0
TARGET_RSS_MB = 300.0
SEED_CHUNK = 2000


@dataclass(frozen=True, slots=True)
class Shape:
    cohorts: int
    schedules: int  # per cohort
    groups: int  # per cohort

    @property
    def rows(self) -> int:
        return self.cohorts * self.schedules * self.groups


# --------------------------------------------------------------------------- setup


def group_name(cohort: int, group: int) -> str:
    return f"{cohort}期{group}群"


def robot_key(cohort: int, group: int) -> str:
    return f"robot-{cohort}-{group}"


def expected_content(cohort: int, group: int) -> str:
    """What the script must say to one group on day 1 (08:00 Shanghai, 2026-03-03)."""
    return f"{group_name(cohort, group)}的同学们早！今天是实战营{cohort}第 1 天（3月3日 周二）。"


async def _insert(session: AsyncSession, table: Any, rows: Sequence[dict[str, Any]]) -> None:
    for start in range(0, len(rows), SEED_CHUNK):
        await session.execute(insert(table), list(rows[start : start + SEED_CHUNK]))


def _camp_rows(shape: Shape, now: datetime) -> Iterator[tuple[Any, list[dict[str, Any]]]]:
    """Each table's rows, in the order they are written: cohorts, their robot groups and
    links, the script, the schedules (one table's rows at a time, as they are written)."""
    stamps = {"created_at": now, "updated_at": now}
    cohorts = range(1, shape.cohorts + 1)
    groups = [(c, g) for c in cohorts for g in range(1, shape.groups + 1)]
    yield (
        Cohort,
        [
            {
                "id": c,
                "name": f"{c}期",
                "camp": f"实战营{c}",
                "start_date": START,
                "days": 7,
                "channel_state": f"bench{c}",
                "timezone": TZ,
                **stamps,
            }
            for c in cohorts
        ],
    )
    yield (
        Group,
        [
            {
                "id": n,
                "name": group_name(c, g),
                "channel": "robot",
                "robot_key": robot_key(c, g),
                "status": "active",
                "needs_sync": False,
                **stamps,
            }
            for n, (c, g) in enumerate(groups, 1)
        ],
    )
    yield (
        CohortGroup,
        [{"group_id": n, "cohort_id": c, "linked_at": now} for n, (c, _) in enumerate(groups, 1)],
    )
    yield Script, [_script_row(stamps)]
    yield (
        Schedule,
        [
            {
                "script_key": SCRIPT_KEY,
                "cohort_id": c,
                "trigger": {"type": "cohort_day", "day": 1, "time": "08:00"},
                "target": {"type": "cohort_groups"},
                "enabled": True,
                **stamps,
            }
            for c in cohorts
            for _ in range(shape.schedules)
        ],
    )


def _script_row(stamps: dict[str, datetime]) -> dict[str, Any]:
    return {
        "key": SCRIPT_KEY,
        "title": "早安",
        "category": "daily",
        "msgtype": "text",
        "body": BODY,
        "attachments": [],
        "schedule_hint": None,
        "description": "",
        "version": 1,
        **stamps,
    }


async def _tune_postgres(engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions.begin() as session:
        # Explicit ids above leave the sequences behind, and a fresh table has no stats.
        for table in ("cohorts", "groups"):
            await session.execute(
                text(f"SELECT setval('{table}_id_seq', (SELECT max(id) FROM {table}))")
            )
    async with engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        await conn.execute(text("ANALYZE"))


async def seed(
    engine: AsyncEngine, sessions: async_sessionmaker[AsyncSession], shape: Shape
) -> None:
    """The camp, written in bulk; the firings planned by the real planner."""
    now = PLANNED_AT
    async with sessions.begin() as session:
        for table, rows in _camp_rows(shape, now):
            await _insert(session, table, rows)
    async with sessions.begin() as session:
        await plan_all(session=session, now=now, default_tz=TZ)
    if engine.dialect.name == "postgresql":
        await _tune_postgres(engine, sessions)


# --------------------------------------------------------------------------- measuring


class TimedSession(Session):
    """The bench's session class: `CommitLog` hooks its events, not every Session's."""


@dataclass
class CommitLog:
    """When each outbox key was committed, in real seconds since `started`.

    The parameters of every statement the engine runs are kept per connection while its
    transaction is open, and stamped when the session reports the commit done; a rolled
    back transaction's are dropped. Only afterwards are the keys (any string starting
    with `schedule:`) picked out of them, so the timed run pays no more than a list
    append per statement. It sees whatever statements `fire_due` chooses to run.
    """

    started: float = 0.0
    commits: list[tuple[float, list[Any]]] = field(default_factory=list)
    recording: bool = False

    def attach(self, engine: AsyncEngine) -> None:
        event.listen(engine.sync_engine, "after_cursor_execute", self._executed)
        event.listen(TimedSession, "after_begin", self._begun)
        event.listen(TimedSession, "after_commit", self._committed)
        event.listen(TimedSession, "after_rollback", self._rolled_back)

    def _executed(
        self, conn: Connection, _cursor: Any, _statement: str, parameters: Any, *_: Any
    ) -> None:
        if self.recording:
            conn.info.setdefault("bench_parameters", []).append(parameters)

    def _begun(self, session: Session, _tx: SessionTransaction, conn: Connection) -> None:
        session.info["bench_parameters"] = conn.info["bench_parameters"] = []

    def _committed(self, session: Session) -> None:
        parameters = session.info.pop("bench_parameters", None)
        if self.recording and parameters:
            self.commits.append((time.perf_counter() - self.started, parameters))

    def _rolled_back(self, session: Session) -> None:
        session.info.pop("bench_parameters", None)

    def committed(self) -> dict[str, float]:
        """Each key written, and when its first commit was."""
        found: dict[str, float] = {}
        for at, parameters in self.commits:
            for value in _strings(parameters):
                if value.startswith("schedule:"):
                    found.setdefault(value, at)
        return found


def _strings(value: Any) -> Iterator[str]:
    """The strings in a statement's parameters, however the driver takes them."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def firing_latencies(committed: dict[str, float]) -> list[float]:
    """Per schedule (one firing each here): when its last row was committed."""
    last: dict[str, float] = defaultdict(float)
    for key, at in committed.items():
        schedule = key.split(":", 2)[1]
        last[schedule] = max(last[schedule], at)
    return sorted(last.values())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --------------------------------------------------------------------------- the run


@dataclass
class Result:
    backend: str
    firings: int = 0
    rows_expected: int = 0
    seed_s: float = 0.0
    calls: int = 0  # fire_due calls until nothing was due
    fired: int = 0
    missed: int = 0
    failed: int = 0
    wall_s: float = 0.0
    cpu_s: float = 0.0  # this process's CPU (every thread) during the timed run
    machine_busy: float = float("nan")  # of all CPUs during the timed run: others' load too
    commits: int = 0
    p50_s: float = float("nan")
    p99_s: float = float("nan")
    max_s: float = float("nan")
    rss_before_mb: float = 0.0
    peak_rss_mb: float = 0.0
    rows: int = 0
    distinct_keys: int = 0
    unexpected_keys: int = 0
    wrong_content: int = 0
    unrecorded_rows: int = 0
    firings_not_fired: int = 0
    rerun_fired: int = 0
    rerun_new_rows: int = 0
    refire_fired: int = 0
    refire_new_rows: int = 0
    refire_wall_s: float = 0.0
    problems: list[str] = field(default_factory=list)

    @property
    def correct(self) -> bool:
        return not self.problems


async def outbox_count(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(OutboxMessage)) or 0)


async def fire_until_idle(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, result: Result
) -> None:
    """Call fire_due back to back until a call finds nothing due.

    A fire_due that handles only part of what is due leaves the rest to the next tick,
    SAFETY_TICK_S later in production; calling again at once flatters it, and the count
    of calls shows how many ticks it really needed.
    """
    while True:
        report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
        done = report.fired + report.missed + report.failed
        if not done:
            return
        result.calls += 1
        result.fired += report.fired
        result.missed += report.missed
        result.failed += report.failed


async def verify(
    sessions: async_sessionmaker[AsyncSession],
    shape: Shape,
    r: Result,
    committed: dict[str, float],
) -> None:
    expected: dict[str, str] = {}
    async with sessions() as session:
        schedules = (await session.execute(select(Schedule.id, Schedule.cohort_id))).all()
        due = DUE.strftime("%Y%m%dT%H%M%SZ")
        for schedule_id, cohort in schedules:
            assert cohort is not None
            for g in range(1, shape.groups + 1):
                key = f"schedule:{schedule_id}:robot:{robot_key(cohort, g)}:{due}"
                expected[key] = expected_content(cohort, g)
        rows = (await session.execute(select(OutboxMessage.key, OutboxMessage.payload))).all()
        r.firings_not_fired = int(
            await session.scalar(
                select(func.count())
                .select_from(Firing)
                .where((Firing.status != FiringStatus.FIRED) | (Firing.enqueued != shape.groups))
            )
            or 0
        )
    r.rows = len(rows)
    r.distinct_keys = len({key for key, _ in rows})
    r.unexpected_keys = sum(key not in expected for key, _ in rows)
    r.wrong_content = sum(
        key in expected and _content(payload) != expected[key] for key, payload in rows
    )
    r.unrecorded_rows = sum(key not in committed for key, _ in rows)


def _content(payload: dict[str, Any]) -> object:
    message = payload.get("message")
    return message.get("content") if isinstance(message, dict) else None


def problems(r: Result) -> list[str]:
    found = []
    if r.rows != r.rows_expected or r.distinct_keys != r.rows_expected:
        found.append(f"{r.rows} rows, {r.distinct_keys} distinct keys, want {r.rows_expected}")
    if r.unexpected_keys or r.wrong_content:
        found.append(f"{r.unexpected_keys} unexpected keys, {r.wrong_content} wrong contents")
    if r.firings_not_fired or r.fired != r.firings or r.failed or r.missed:
        found.append(
            f"fired {r.fired}/{r.firings} (missed {r.missed}, failed {r.failed}), "
            f"{r.firings_not_fired} firings not 'fired' with every target enqueued"
        )
    if r.unrecorded_rows:
        found.append(f"{r.unrecorded_rows} rows written outside a recorded commit")
    if r.rerun_new_rows or r.rerun_fired or r.refire_new_rows:
        found.append(
            f"the second run fired {r.rerun_fired} and wrote {r.rerun_new_rows} rows; "
            f"the double firing wrote {r.refire_new_rows}"
        )
    return found


async def idempotency(
    sessions: async_sessionmaker[AsyncSession], clock: ManualClock, r: Result
) -> None:
    # The next tick: nothing is planned any more.
    before = await outbox_count(sessions)
    clock.advance(timedelta(seconds=SAFETY_TICK_S))
    report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
    r.rerun_fired = report.fired
    r.rerun_new_rows = await outbox_count(sessions) - before
    # A double firing: every firing back to `planned` (as if a second scheduler had read
    # them before the first claimed them), then fired again: the keys must hold.
    async with sessions.begin() as session:
        await session.execute(update(Firing).values(status=FiringStatus.PLANNED, fired_at=None))
    started = time.perf_counter()
    while True:
        report = await fire_due(sessions=sessions, clock=clock, default_tz=TZ)
        r.refire_fired += report.fired
        if not report.fired + report.missed + report.failed:
            break
    r.refire_wall_s = time.perf_counter() - started
    r.refire_new_rows = await outbox_count(sessions) - before


async def run_backend(backend: str, url: str, shape: Shape, profile: bool) -> Result:
    r = Result(backend=backend, firings=shape.cohorts * shape.schedules, rows_expected=shape.rows)
    await fresh_schema(url)
    engine = create_engine(url)
    sessions = async_sessionmaker(engine, expire_on_commit=False, sync_session_class=TimedSession)
    try:
        started = time.perf_counter()
        await seed(engine, sessions, shape)
        r.seed_s = time.perf_counter() - started
        log = CommitLog()
        log.attach(engine)
        clock = ManualClock(DUE)
        r.rss_before_mb = current_rss_mb()
        profiler = cProfile.Profile() if profile else None
        log.recording = True
        cpu, machine = time.process_time(), machine_ticks()
        log.started = time.perf_counter()
        if profiler:
            profiler.enable()
        await fire_until_idle(sessions, clock, r)
        if profiler:
            profiler.disable()
        r.wall_s = time.perf_counter() - log.started
        r.cpu_s = time.process_time() - cpu
        (busy, total), (busy0, total0) = machine_ticks(), machine
        r.machine_busy = (busy - busy0) / (total - total0) if total > total0 else float("nan")
        log.recording = False
        r.peak_rss_mb = peak_rss_mb()
        committed = log.committed()
        latencies = firing_latencies(committed)
        r.commits = len(log.commits)
        r.p50_s, r.p99_s = percentile(latencies, 50), percentile(latencies, 99)
        r.max_s = latencies[-1] if latencies else float("nan")
        await verify(sessions, shape, r, committed)
        await idempotency(sessions, clock, r)
        r.problems = problems(r)
        if profiler:
            print_profile(profiler)
    finally:
        await engine.dispose()
    return r


def print_profile(profiler: cProfile.Profile) -> None:
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("tottime").print_stats(30)
    print(out.getvalue())


# --------------------------------------------------------------------------- report


def report(r: Result) -> None:
    ok = "ok" if r.p99_s < TARGET_P99_S else "MISSED"
    rss_ok = "ok" if r.peak_rss_mb < TARGET_RSS_MB else "MISSED"
    print(f"\n-- {r.backend}")
    print(f"  seeded in {r.seed_s:.1f} s: {r.firings:,} firings due {DUE:%Y-%m-%d %H:%M} UTC")
    print(
        f"  fire_due calls          {r.calls} (back to back; a call the scheduler did not "
        f"need waits for the next due firing or the {SAFETY_TICK_S:.0f} s safety tick)"
    )
    print(f"  fired / missed / failed {r.fired:,} / {r.missed} / {r.failed}")
    print(f"  transactions committed  {r.commits:,}")
    print(
        f"  latency p50 / p99 / max {r.p50_s:.3f} / {r.p99_s:.3f} / {r.max_s:.3f} s  "
        f"(target p99 < {TARGET_P99_S:.0f} s: {ok})"
    )
    print(
        f"  peak RSS                {r.peak_rss_mb:.0f} MB (target < {TARGET_RSS_MB:.0f} MB: "
        f"{rss_ok}); {r.rss_before_mb:.0f} MB when firing began"
    )
    print(
        f"  rows written            {r.rows:,} ({r.distinct_keys:,} distinct keys; want "
        f"{r.rows_expected:,}); unexpected {r.unexpected_keys}, wrong content "
        f"{r.wrong_content}"
    )
    print(
        f"  wall time               {r.wall_s:.2f} s (CPU: this process {r.cpu_s:.2f} s; all "
        f"{os.cpu_count()} CPUs {r.machine_busy:.0%} busy, the database server and any other "
        "load included)"
    )
    print(
        f"  second run (+{SAFETY_TICK_S:.0f} s)      fired {r.rerun_fired}, new rows "
        f"{r.rerun_new_rows}"
    )
    print(
        f"  double firing           fired {r.refire_fired:,} again, new rows "
        f"{r.refire_new_rows} ({r.refire_wall_s:.2f} s)"
    )
    for problem in r.problems:
        print(f"  PROBLEM: {problem}")


def summary(results: Sequence[Result]) -> None:
    print("\n== summary")
    print(
        f"  {'backend':<20} {'p50':>7} {'p99':>7} {'peak RSS':>9} {'rows':>8} {'wall':>7} "
        f"{'calls':>5}  correct"
    )
    for r in results:
        print(
            f"  {r.backend:<20} {r.p50_s:6.2f}s {r.p99_s:6.2f}s {r.peak_rss_mb:7.0f}MB "
            f"{r.rows:>8,} {r.wall_s:6.2f}s {r.calls:>5}  {'yes' if r.correct else 'NO'}"
        )
    print(f"  targets: p99 < {TARGET_P99_S:.0f} s, peak RSS < {TARGET_RSS_MB:.0f} MB")
    print(
        "  latency: real time from the fire_due call (the tick waking at the due minute; the\n"
        "  ManualClock stays there) to the commit holding the firing's last outbox row"
    )


# --------------------------------------------------------------------------- main


def child(args: argparse.Namespace, shape: Shape) -> int:
    """One backend in this process: report, and leave the result for the parent."""
    result = asyncio.run(run_backend(args.name, args.url, shape, args.profile))
    report(result)
    Path(args.result).write_text(json.dumps(asdict(result)))
    return 0


def parent(args: argparse.Namespace, shape: Shape) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="campbot-scheduler-"))
    results = []
    lateness = []
    try:
        for choice, name, url, _file in backends(
            workdir, args.backend, sqlite_name="scheduler.db"
        ):
            out = workdir / f"{choice}.json"
            command = [sys.executable, __file__, "--child", name, url, str(out)]
            command += [f"--{k}={v}" for k, v in asdict(shape).items()]
            command += ["--profile"] if args.profile else []
            sys.stdout.flush()  # the child writes to the same stream
            if subprocess.run(command).returncode == 0:
                results.append(Result(**json.loads(out.read_text())))
            else:
                results.append(Result(backend=name, problems=["the run crashed (see above)"]))
            if not args.no_lateness:
                lateness.append(asyncio.run(measure_lateness(name, url, _file)))
                report_lateness(lateness[-1])
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary(results)
    for measured in lateness:
        report_lateness(measured, brief=True)
    return 0 if all(r.correct for r in results) and all(m.correct for m in lateness) else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--cohorts", type=int, default=100)
    parser.add_argument("--schedules", type=int, default=100, help="per cohort")
    parser.add_argument("--groups", type=int, default=10, help="robot groups per cohort")
    add_backend_option(parser)
    parser.add_argument(
        "--profile", action="store_true", help="run fire_due under cProfile (slower)"
    )
    parser.add_argument(
        "--no-lateness", action="store_true", help="skip the lateness part (pushes on time)"
    )
    parser.add_argument(
        "--child", nargs=3, metavar=("NAME", "URL", "RESULT"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)
    shape = Shape(args.cohorts, args.schedules, args.groups)
    if min(asdict(shape).values()) < 1:
        parser.error("need cohorts, schedules and groups >= 1")
    if args.child:
        args.name, args.url, args.result = args.child
        return child(args, shape)
    return parent(args, shape)


if __name__ == "__main__":
    sys.exit(main())
