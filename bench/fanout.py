"""Outbox fan-out benchmark: a message to each of 1,000 robot groups under WeCom's limits
(simulated time), and the sender's raw throughput with the limits off (real time).

    python bench/fanout.py            # SQLite; PostgreSQL too when
                                      # CAMPBOT_BENCH_POSTGRES_URL is set

Everything runs in this process: the sandbox (WeCom's fake, with its real per-robot
limit) answers through `sandbox_transport`, and the real `Sender`, `ChannelDeliverer`
and `WeComClient` send through it. The fan-out runs on a ManualClock that jumps to the
sender's next due row whenever it idles (as `run_forever` would sleep), so its makespan
is measured exactly without waiting a minute. It is a benchmark, not a test: it prints
figures beside their targets and exits 1 only when correctness fails (a message lost,
repeated, or refused with 45009), never for a missed speed target.
"""

# A script that reports by printing.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import asyncio
import cProfile
import inspect
import io
import os
import pstats
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypedDict

import httpx
from sqlalchemy import event, func, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

# Run as `python bench/fanout.py`: the repo root is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from app import outbox  # the repo's modules: after the sys.path line above
from app.channels.deliver import ChannelDeliverer
from app.channels.messages import OutMessage
from app.channels.reach import Channel, Destination, enqueue_message, reach_group
from app.clock import Clock, ManualClock, SystemClock
from app.db import create_engine, create_sessionmaker
from app.models import Group, OutboxMessage
from app.sender import Sender
from app.wecom.client import WeComClient
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from bench._senders import SendersResult, report_senders, senders
from bench._support import add_backend_option, backends, fresh_schema, machine_ticks

# Obviously fake credentials for the benchmark corp.
CORP_ID, AGENT_ID, SECRET = "wwcampbotbench0002", 1000002, "bench-secret"
T0 = datetime(2026, 3, 1, 20, 0, tzinfo=UTC)

# WeCom lets a robot send 20 messages in any 60 s (a rolling window). A sender that spaces
# each robot's sends evenly at that rate needs (n - 1) × 3 s for n messages to one robot:
# the lower bound the fan-out's makespan is held against.
ROBOT_LIMIT, ROBOT_WINDOW = 20, timedelta(minutes=1)
EVEN_SPACING = ROBOT_WINDOW / ROBOT_LIMIT
TARGET_MAKESPAN_RATIO = 1.1
TARGET_THROUGHPUT = 500.0  # messages/s, limits off, one process
TARGET_SENDERS = 2000.0  # messages/s, limits off, two sender processes (on PostgreSQL)
MAX_ROUNDS = 1_000_000
ENQUEUE_CHUNK = 1000


# --------------------------------------------------------------------------- setup


class Tuning(TypedDict, total=False):
    """Sender settings the throughput part may override (`--batch`, `--concurrency`)."""

    batch: int
    concurrency: int


class StatementCounter:
    """SQL statements the engine sent, to show the database work per message."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1


@asynccontextmanager
async def sending_through_sandbox(
    url: str,
    state: SandboxState,
    clock: Clock,
    intervals: dict[str, timedelta],
    tuning: Tuning | None = None,
) -> AsyncIterator[tuple[Sender, StatementCounter]]:
    """The real sender, channel layer and WeCom client, with the sandbox as transport.

    `tuning` overrides Sender's batch and concurrency (its defaults are what `campbot
    sender` and the server run)."""
    engine = create_engine(url)
    counter = StatementCounter(engine)
    sessions = create_sessionmaker(engine)
    try:
        async with httpx.AsyncClient(
            base_url="https://qyapi.weixin.qq.com", transport=sandbox_transport(state)
        ) as http:
            client = WeComClient(
                http=http,
                corp_id=CORP_ID,
                agent_id=AGENT_ID,
                secret=SECRET,
                sessions=sessions,
                clock=clock,
            )
            deliver = ChannelDeliverer(client)
            yield (
                Sender(
                    sessions=sessions,
                    deliver=deliver,
                    clock=clock,
                    intervals=intervals,
                    **(tuning or {}),
                ),
                counter,
            )
    finally:
        await engine.dispose()


async def enqueue_all(
    sessions: async_sessionmaker[AsyncSession],
    work: Sequence[tuple[str, Destination, OutMessage]],
    now: datetime,
) -> None:
    for start in range(0, len(work), ENQUEUE_CHUNK):
        async with sessions.begin() as session:
            for key, destination, message in work[start : start + ENQUEUE_CHUNK]:
                await enqueue_message(
                    session=session, key=key, destination=destination, message=message, now=now
                )


@dataclass(slots=True)
class Drain:
    rounds: int = 0
    failed_rounds: int = 0
    errors: Counter[str] = field(default_factory=Counter)


async def drain(sender: Sender, clock: Clock) -> Drain:
    """Run the sender until nothing is left; on a ManualClock, jump to the next due row.

    A failed round is counted and the loop goes on, as `Sender.run_forever` does.
    """
    result = Drain()
    while result.rounds < MAX_ROUNDS:
        result.rounds += 1
        try:
            if await sender.run_once():
                continue
        except Exception as exc:
            result.failed_rounds += 1
            result.errors[f"{type(exc).__name__}: {str(exc).splitlines()[0][:120]}"] += 1
            await _let_orphans_finish()
            continue
        due = await sender.next_due()
        if due is None:
            return result
        if isinstance(clock, ManualClock):
            clock.set(max(due, clock.now()))
        else:
            await asyncio.sleep(max((due - clock.now()).total_seconds(), 0.0))
    raise RuntimeError(f"the outbox did not drain in {MAX_ROUNDS} rounds")


async def _let_orphans_finish() -> None:
    # When one worker of a round fails, gather() returns at once while the other workers
    # are still sending; wait for them so rounds do not overlap.
    others = asyncio.all_tasks() - {asyncio.current_task()}
    if others:
        await asyncio.wait(others)


async def outbox_statuses(sender: Sender) -> Counter[str]:
    async with sender.sessions() as session:
        rows = await session.execute(
            select(OutboxMessage.status, func.count()).group_by(OutboxMessage.status)
        )
        return Counter({str(status): int(n) for status, n in rows.all()})


# --------------------------------------------------------------------------- fan-out


@dataclass(slots=True)
class FanoutResult:
    backend: str
    groups: int
    robots: int
    per_robot: int
    makespan: timedelta
    wall_s: float
    statements: int
    drain: Drain
    statuses: Counter[str]
    duplicates: int
    losses: int
    rate_limited: int
    other_errors: int
    max_in_window: int

    @property
    def lower_bound(self) -> timedelta:
        return EVEN_SPACING * (self.per_robot - 1)

    @property
    def ratio(self) -> float:
        return self.makespan / self.lower_bound if self.lower_bound else float("nan")

    @property
    def correct(self) -> bool:
        sent = self.statuses.get("sent", 0) == self.groups
        return sent and not (self.duplicates or self.losses or self.rate_limited)


def _groups(count: int, robots: Sequence[str]) -> Iterator[tuple[str, Destination, OutMessage]]:
    """Group n is reached through robot n mod len(robots): each robot serves count/len."""
    for n in range(count):
        group = Group(
            id=n + 1, name=f"7期{n + 1}群", channel="robot", robot_key=robots[n % len(robots)]
        )
        message = OutMessage("text", f"{group.name}：今晚 8 点开营直播，记得准时参加")
        yield f"fanout:{n}", reach_group(group), message


def _max_in_window(times: Sequence[datetime]) -> int:
    """The most sends that fell within one rolling window (WeCom allows ROBOT_LIMIT)."""
    ordered = sorted(times)
    best, start = 0, 0
    for end, at in enumerate(ordered):
        while at - ordered[start] >= ROBOT_WINDOW:
            start += 1
        best = max(best, end - start + 1)
    return best


async def fanout(backend: str, url: str, *, groups: int, robots: int) -> FanoutResult:
    clock = ManualClock(T0)
    state = SandboxState(corp_id=CORP_ID, apps={AGENT_ID: SECRET}, clock=clock)
    keys = [f"bench-robot-{n:02d}" for n in range(robots)]
    for key in keys:
        state.add_robot(key)
    work = list(_groups(groups, keys))
    intervals = dict(outbox.RATE_INTERVALS)
    async with sending_through_sandbox(url, state, clock, intervals) as (sender, counter):
        await enqueue_all(sender.sessions, work, clock.now())
        counter.count = 0
        started = time.perf_counter()
        result = await drain(sender, clock)
        wall = time.perf_counter() - started
        statuses = await outbox_statuses(sender)

    delivered = Counter(d.body["text"]["content"] for d in state.delivered("webhook"))
    expected = {message.content for _, _, message in work}
    per_robot = [[d.at for d in state.delivered("webhook") if d.target == key] for key in keys]
    last = max((d.at for d in state.deliveries), default=T0)
    return FanoutResult(
        backend=backend,
        groups=groups,
        robots=robots,
        per_robot=-(-groups // robots),  # the busiest robot's share
        makespan=last - T0,
        wall_s=wall,
        statements=counter.count,
        drain=result,
        statuses=statuses,
        duplicates=sum(n - 1 for n in delivered.values() if n > 1),
        losses=len(expected - set(delivered)),
        rate_limited=sum(1 for c in state.calls if c.errcode == 45009),
        other_errors=sum(1 for c in state.calls if c.errcode not in (None, 0, 45009)),
        max_in_window=max(_max_in_window(times) for times in per_robot),
    )


def report_fanout(r: FanoutResult) -> None:
    ok = "ok" if r.correct else "FAILED"
    print(
        f"\n-- fan-out, {r.backend}: {r.groups} groups over {r.robots} robots "
        f"({r.per_robot} each), sandbox limits on, simulated time"
    )
    print(f"  makespan (simulated)         {r.makespan.total_seconds():8.2f} s")
    print(
        f"  lower bound                  {r.lower_bound.total_seconds():8.2f} s   "
        f"= ({r.per_robot} - 1) x {EVEN_SPACING.total_seconds():.0f} s: {r.per_robot} "
        f"sends to one robot spaced evenly at WeCom's {ROBOT_LIMIT}/min"
    )
    print(f"  ratio                        {r.ratio:8.3f}     target <= {TARGET_MAKESPAN_RATIO}")
    print(
        f"  duplicates / losses / 45009  {r.duplicates} / {r.losses} / {r.rate_limited}"
        f"   target 0 / 0 / 0   [{ok}]"
    )
    print(f"  other WeCom errors           {r.other_errors:8d}")
    print(f"  most sends to a robot in 60 s{r.max_in_window:7d}     WeCom allows {ROBOT_LIMIT}")
    print(f"  outbox rows                  {dict(r.statuses)}")
    print(f"  wall time of the drain       {r.wall_s:8.2f} s   ({r.drain.rounds} rounds)")
    print(f"  SQL statements per message   {r.statements / max(r.groups, 1):8.1f}")
    if r.drain.failed_rounds:
        print(f"  failed rounds (the sender logs and retries these)  {r.drain.failed_rounds}")
        for error, n in r.drain.errors.most_common(5):
            print(f"    {n:5d} x {error}")


# --------------------------------------------------------------------------- throughput


@dataclass(slots=True)
class ThroughputResult:
    backend: str
    rows: int
    wall_s: float
    enqueue_s: float
    statements: int
    drain: Drain
    statuses: Counter[str]
    duplicates: int
    losses: int
    settings: str
    cpu_s: float  # this process's CPU over the drain: sender, client, sandbox, driver thread
    machine_cpu_s: float  # every CPU's busy time over the drain (PostgreSQL's server too)
    profile: str = ""

    @property
    def per_second(self) -> float:
        return self.rows / self.wall_s if self.wall_s else float("inf")

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s * 1000 / self.rows

    @property
    def per_core(self) -> float:
        """Messages a second one core would send at this CPU per message."""
        return self.rows / self.cpu_s if self.cpu_s else float("inf")

    @property
    def machine_cpu_ms(self) -> float:
        return self.machine_cpu_s * 1000 / self.rows

    @property
    def correct(self) -> bool:
        sent = self.statuses.get("sent", 0) == self.rows
        return sent and not (self.duplicates or self.losses)


async def throughput(
    backend: str, url: str, *, rows: int, profile: bool, tuning: Tuning
) -> ThroughputResult:
    clock = SystemClock()
    state = SandboxState(corp_id=CORP_ID, apps={AGENT_ID: SECRET}, clock=clock)
    chats = [f"benchchat{n:03d}" for n in range(100)]
    for chatid in chats:
        state.add_appchat(chatid, ["zhangsan", "lisi"])
    work = [
        (
            f"raw:{n}",
            Destination(Channel.APPCHAT, chats[n % len(chats)]),
            OutMessage("text", f"第{n}条"),
        )
        for n in range(rows)
    ]
    async with sending_through_sandbox(url, state, clock, {}, tuning) as (sender, counter):
        started = time.perf_counter()
        await enqueue_all(sender.sessions, work, clock.now())
        enqueued = time.perf_counter()
        counter.count = 0
        profiler = cProfile.Profile() if profile else None
        if profiler:
            profiler.enable()
        cpu, busy = time.process_time(), machine_ticks()[0]
        result = await drain(sender, clock)
        wall = time.perf_counter() - enqueued
        cpu, busy = time.process_time() - cpu, machine_ticks()[0] - busy
        if profiler:
            profiler.disable()
        statuses = await outbox_statuses(sender)

    delivered = Counter(d.body["text"]["content"] for d in state.delivered("appchat"))
    expected = {message.content for _, _, message in work}
    return ThroughputResult(
        backend=backend,
        rows=rows,
        wall_s=wall,
        enqueue_s=enqueued - started,
        statements=counter.count,
        drain=result,
        statuses=statuses,
        duplicates=sum(n - 1 for n in delivered.values() if n > 1),
        losses=len(expected - set(delivered)),
        settings=_sender_settings(tuning),
        cpu_s=cpu,
        machine_cpu_s=busy / os.sysconf("SC_CLK_TCK"),
        profile=_profile_summary(profiler) if profiler else "",
    )


def _sender_settings(tuning: Tuning) -> str:
    defaults = inspect.signature(Sender).parameters
    batch = tuning.get("batch", defaults["batch"].default)
    concurrency = tuning.get("concurrency", defaults["concurrency"].default)
    return f"batch {batch}, concurrency {concurrency}"


# Where the time goes, by area: the first matching path fragment names it.
AREAS = (
    ("app/outbox.py", "app.outbox + app.sender (claim, mark, apply)"),
    ("app/sender.py", "app.outbox + app.sender (claim, mark, apply)"),
    ("app/channels/", "app.channels (payload, limits)"),
    ("app/wecom_sandbox/", "sandbox (the fake WeCom)"),
    ("app/wecom/", "app.wecom (client, tokens)"),
    ("sqlalchemy/orm/", "SQLAlchemy ORM"),
    ("sqlalchemy/", "SQLAlchemy Core/engine"),
    ("aiosqlite", "aiosqlite (thread hand-off)"),
    ("asyncpg", "asyncpg"),
    ("httpx", "httpx"),
    ("asyncio", "asyncio event loop"),
    ("threading.py", "threads (aiosqlite waits)"),
    ("json", "json"),
)


def _area(filename: str) -> str:
    return next((name for fragment, name in AREAS if fragment in filename), "other")


def _profile_summary(profiler: cProfile.Profile) -> str:
    stats = pstats.Stats(profiler)
    by_area: Counter[str] = Counter()
    for (filename, _line, _name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_area[_area(filename)] += tottime
    total = sum(by_area.values()) or 1.0
    lines = ["  own time by area (cProfile tottime; the profiler slows everything down):"]
    lines += [
        f"    {seconds / total:6.1%}  {seconds:7.2f} s  {area}"
        for area, seconds in by_area.most_common()
    ]
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
    top = [line for line in out.getvalue().splitlines() if line.strip()][-16:]
    lines += ["  top functions by own time:", *("    " + line for line in top)]
    return "\n".join(lines)


def report_throughput(r: ThroughputResult) -> None:
    ok = "ok" if r.correct else "FAILED"
    met = "met" if r.per_second >= TARGET_THROUGHPUT else "MISSED"
    print(
        f"\n-- raw throughput, {r.backend}: {r.rows} appchat rows, limits off "
        f"(Sender(intervals={{}}), {r.settings}), sandbox in-process"
    )
    print(
        f"  messages/s                   {r.per_second:8.0f}     target >= "
        f"{TARGET_THROUGHPUT:.0f}   [{met}]"
    )
    print(
        f"  wall time                    {r.wall_s:8.2f} s   (enqueueing took "
        f"{r.enqueue_s:.2f} s more, not counted)"
    )
    print(f"  SQL statements per message   {r.statements / max(r.rows, 1):8.1f}")
    print(
        f"  CPU per message              {r.cpu_ms:8.3f} ms  this process (sender, client, "
        f"the in-process sandbox): {r.per_core:.0f} msg/s per core"
    )
    print(
        f"  machine CPU per message      {r.machine_cpu_ms:8.3f} ms  all {os.cpu_count()} CPUs' "
        "busy time: the database server's too, and anything else running"
    )
    print(f"  duplicates / losses          {r.duplicates} / {r.losses}   [{ok}]")
    print(f"  outbox rows                  {dict(r.statuses)}")
    if r.drain.failed_rounds:
        print(
            f"  failed rounds                {r.drain.failed_rounds}: "
            f"{r.drain.errors.most_common(3)}"
        )
    if r.profile:
        print(r.profile)


# --------------------------------------------------------------------------- main


Row = tuple[str, FanoutResult | None, ThroughputResult | None, SendersResult | None]


async def run(args: argparse.Namespace, workdir: Path) -> list[Row]:
    parts = args.part or ["fanout", "throughput", "senders"]
    results: list[Row] = []
    for _key, name, url, sqlite_file in backends(workdir, args.backend, sqlite_name="fanout.db"):
        fan = raw = many = None
        if "fanout" in parts:
            await fresh_schema(url, sqlite_file)
            fan = await fanout(name, url, groups=args.groups, robots=args.robots)
            report_fanout(fan)
        if "throughput" in parts:
            await fresh_schema(url, sqlite_file)
            raw = await throughput(
                name, url, rows=args.rows, profile=args.profile, tuning=tuning(args)
            )
            report_throughput(raw)
        if "senders" in parts:
            await fresh_schema(url, sqlite_file)
            many = await senders(name, url, rows=args.rows, processes=args.senders)
            report_senders(many, TARGET_SENDERS)
        results.append((name, fan, raw, many))
    return results


def tuning(args: argparse.Namespace) -> Tuning:
    chosen = Tuning()
    if args.batch is not None:
        chosen["batch"] = args.batch
    if args.concurrency is not None:
        chosen["concurrency"] = args.concurrency
    return chosen


def correct(row: Row) -> bool:
    _, fan, raw, many = row
    return all(part is None or part.correct for part in (fan, raw, many))


def summary(results: Sequence[Row]) -> None:
    print("\n== summary")
    print(
        f"  {'backend':<20} {'makespan':>9} {'ratio':>6} {'dup/loss/45009':>15} "
        f"{'msg/s':>7} {'wall':>7} {'cpu ms':>7} {'senders':>8}  correct"
    )
    for row in results:
        name, fan, raw, many = row
        fanned = (
            f"{fan.makespan.total_seconds():8.2f}s {fan.ratio:6.3f} "
            f"{f'{fan.duplicates}/{fan.losses}/{fan.rate_limited}':>15}"
            if fan
            else f"{'-':>9} {'-':>6} {'-':>15}"
        )
        rate = (
            f"{raw.per_second:7.0f} {raw.wall_s:6.2f}s {raw.cpu_ms:7.3f}"
            if raw
            else f"{'-':>7} {'-':>7} {'-':>7}"
        )
        two = f"{many.per_second:8.0f}" if many else f"{'-':>8}"
        print(f"  {name:<20} {fanned} {rate} {two}  {'yes' if correct(row) else 'NO'}")
    print(
        f"  targets: ratio <= {TARGET_MAKESPAN_RATIO}, 0/0/0, >= {TARGET_THROUGHPUT:.0f} msg/s "
        f"(one process), >= {TARGET_SENDERS:.0f} msg/s (two sender processes, PostgreSQL)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=1000, help="fan-out: groups (messages)")
    parser.add_argument("--robots", type=int, default=50, help="fan-out: robots they share")
    parser.add_argument("--rows", type=int, default=10_000, help="throughput: appchat rows")
    add_backend_option(parser)
    parser.add_argument(
        "--batch", type=int, help="throughput: Sender(batch=...) instead of its default"
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        help="throughput: Sender(concurrency=...) instead of its default",
    )
    parser.add_argument(
        "--part",
        action="append",
        choices=("fanout", "throughput", "senders"),
        help="only this part (repeatable)",
    )
    parser.add_argument("--senders", type=int, default=2, help="senders part: sender processes")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the throughput run with cProfile and print where time goes",
    )
    args = parser.parse_args(argv)
    if args.groups < 1 or args.robots < 1 or args.rows < 1:
        parser.error("need groups, robots and rows >= 1")
    workdir = Path(tempfile.mkdtemp(prefix="campbot-fanout-"))
    try:
        results = asyncio.run(run(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    summary(results)
    return 0 if results and all(correct(row) for row in results) else 1


if __name__ == "__main__":
    sys.exit(main())
