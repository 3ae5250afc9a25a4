"""Callback intake benchmark, driven by wrk: CampBot against a bare FastAPI endpoint.

    python bench/callback_ingest.py            # SQLite; PostgreSQL too when
                                               # CAMPBOT_BENCH_POSTGRES_URL is set

Every request is built before any timing: signed, encrypted callbacks, each unique
(80% members' texts to the app, 20% enter_agent events) plus a share of WeCom-style
retries (the same signed request again), written to a file that `callback_ingest.lua`
walks through, one line per request, each sent once. The load generator is `wrk` (C,
Debian's package; `./run bench` installs it). That it is not the bottleneck is checked,
not assumed: the null endpoint (`null_app`, plain ASGI under the same uvicorn: reads the
body, answers `success`, no framework) must reach at least 3× CampBot's rate on the same
machine, or CampBot's figure is printed as INVALID. The ratio target is against the bare
FastAPI endpoint (`bare_app`); that endpoint cannot also be the validity check, because
at the target ratio (≥ 0.4) it runs at most 2.5× CampBot's rate.

Per backend: a fresh schema, then `campbot serve` as production runs it (its logging
included) on 127.0.0.1; a warm-up; then wrk for `--duration` s at `--concurrency`
connections; then the wait until every handler ran (no inbox row `received`). It prints
two figures, separately:

- intake: callbacks answered per second while wrk ran, and the latency p50/p99 at wrk;
- sustained: events per second from the start of the load until every handler had run,
  and the server's CPU (all its processes) per event over that time.

Then the bare app (`bare_app`: reads the body, answers `success`) and the null app the
same way. It is a
benchmark, not a test: it exits 1 only when correctness fails (an answer other than 200,
an event lost, doubled, failed or left unhandled), never for a missed speed target.
"""

# A script that reports by printing.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse
from starlette.types import Receive, Send

# Run as `python bench/callback_ingest.py`: the repo root is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._support import (  # after the sys.path line above
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    TOKEN,
    Backend,
    Server,
    add_backend_option,
    backends,
    campbot_serve,
    fresh_schema,
    machine_ticks,
    server_env,
)

LUA = Path(__file__).with_name("callback_ingest.lua")
# Targets (issue 14).
TARGET_RATIO = 0.4  # intake answered/s ÷ bare answered/s
TARGET_P99_MS = 100.0  # intake p99 at concurrency 32
TARGET_PER_CORE = 1000.0  # events/s per core of server CPU, handlers drained
TARGET_CPU_MS = 1.0  # server CPU per event
VALID_FACTOR = 3.0  # the null endpoint must reach 3× CampBot's rate
SHARE_TEXT = 0.8
# How often the drain is polled: the sustained figure's resolution, against the poll's own
# cost in the machine's CPU per event (each poll walks the dead entries of the status index).
DRAIN_POLL_S = 0.2
TEXTS = [
    "老师好，请问今晚几点开课？",
    "收到，谢谢！",
    "作业已提交",
    "请问回放在哪里看？",
    "hello",
    "我想报名进阶班",
    "链接打不开怎么办",
    "今天的任务是什么",
]
USERS = [f"bench_member_{i:04d}" for i in range(400)]
# `--qa-rules`: a camp's FAQ, answering three of the eight texts above (as passive replies).
FAQ = [
    ("开课", "每晚 8 点开课，提前 10 分钟进直播间。"),
    ("回放", "回放在课程群公告的链接里，课后 2 小时内上传。"),
    ("打不开", "请复制链接到手机浏览器打开，仍不行请联系助教。"),
]


# --------------------------------------------------------------------------- bare app

bare_app = FastAPI(title="bare intake baseline")


@bare_app.post("/wecom/callback")
async def bare_receive(request: Request) -> PlainTextResponse:
    await request.body()  # any real endpoint reads the body; nothing else
    return PlainTextResponse("success")


@bare_app.get("/healthz")
async def bare_healthz() -> PlainTextResponse:
    return PlainTextResponse("ok")


async def null_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """The least a server can do per callback: the load generator's ceiling here."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:  # read the whole body
        more = (await receive()).get("more_body", False)
    body = b"ok" if scope["path"] == "/healthz" else b"success"
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --------------------------------------------------------------------------- workload


def _text_xml(*, at: int, user: str, content: str, msg_id: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{at}</CreateTime>"
        f"<MsgType><![CDATA[text]]></MsgType><Content><![CDATA[{content}]]></Content>"
        f"<MsgId>{msg_id}</MsgId><AgentID>{AGENT_ID}</AgentID></xml>"
    )


def _enter_xml(*, at: int, user: str) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName>"
        f"<FromUserName><![CDATA[{user}]]></FromUserName><CreateTime>{at}</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType><Event><![CDATA[enter_agent]]></Event>"
        f"<EventKey><![CDATA[]]></EventKey><AgentID>{AGENT_ID}</AgentID></xml>"
    )


def identity(plaintext: str) -> str:
    """What makes a generated event unique, read back from an inbox row's body."""
    root = ET.fromstring(plaintext)  # our own generated XML
    if root.findtext("MsgType") == "text":
        return "text:" + (root.findtext("MsgId") or "")
    return f"enter:{root.findtext('FromUserName')}:{root.findtext('CreateTime')}"


@dataclass(slots=True)
class Workload:
    lines: list[str]  # "path\tbody", in sending order
    identities: list[str | None]  # per line: the event's identity (None: a retry)
    kinds: Counter[str] = field(default_factory=Counter)

    def write(self, path: Path) -> None:
        path.write_text("\n".join(self.lines) + "\n")

    def sent_identities(self, per_thread: list[int]) -> set[str]:
        """The events of the lines wrk sent: its thread t sends lines t, t + T, t + 2T, …
        in order (callback_ingest.lua), `per_thread[t]` of them."""
        threads = len(per_thread)
        return {
            identity_
            for n, identity_ in enumerate(self.identities)
            if identity_ is not None and n // threads < per_thread[n % threads]
        }


def build_workload(
    *,
    events: int,
    duplicates: float,
    seed: int,
    now: datetime,
    serial_from: int,
    share_text: float = SHARE_TEXT,
) -> Workload:
    """`events` unique callbacks (`share_text` texts, the rest enter_agent) and a share of
    retries of earlier ones (the same line again, 20–400 lines later)."""
    from app.wecom.crypto import CallbackCrypto
    from app.wecom_sandbox.callbacks import CallbackBuilder

    rng = random.Random(seed)
    builder = CallbackBuilder(
        CallbackCrypto(token=TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID),
        agent_id=AGENT_ID,
    )
    base = int(now.timestamp()) - 60
    lines: list[str] = []
    identities: list[str | None] = []
    kinds: Counter[str] = Counter()
    retries: dict[int, list[str]] = {}
    for n in range(events):
        serial = serial_from + n
        at, user = base + n // 50, rng.choice(USERS)
        if rng.random() < share_text:
            msg_id = 7_300_000_000_000_000_000 + serial
            plaintext = _text_xml(at=at, user=user, content=rng.choice(TEXTS), msg_id=msg_id)
            kinds["text"] += 1
        else:
            plaintext = _enter_xml(at=at, user=f"{user}_{serial}")
            kinds["enter_agent"] += 1
        signed = builder.post(plaintext, at=now)
        line = signed.path + "\t" + signed.body.replace("\n", "").replace("\t", " ")
        lines.append(line)
        identities.append(identity(plaintext))
        if rng.random() < duplicates:
            retries.setdefault(len(lines) + rng.randint(20, 400), []).append(line)
        for retry in retries.pop(len(lines), []):
            lines.append(retry)
            identities.append(None)
            kinds["retry"] += 1
    return Workload(lines, identities, kinds)


# --------------------------------------------------------------------------- wrk


@dataclass(slots=True)
class WrkRun:
    sent: int
    per_thread: list[int]
    answered: int
    non200: int
    socket_errors: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    client_cpu_s: float
    exhausted: bool  # a thread ran out of requests before the end: the rate is wrong

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0

    @property
    def client_busy(self) -> float:
        return self.client_cpu_s / self.seconds if self.seconds else 0.0


def run_wrk(
    port: int,
    requests: Path,
    *,
    workdir: Path,
    seconds: float,
    concurrency: int,
    threads: int,
    wrap: bool,
) -> WrkRun:
    """wrk against 127.0.0.1:port; the figures its Lua script reported, and its CPU."""
    report = workdir / "wrk-report.txt"
    report.unlink(missing_ok=True)
    env = {
        **os.environ,
        "REQUESTS": str(requests),
        "THREADS": str(threads),
        "WRAP": "1" if wrap else "0",
        "REPORT": str(report),
    }
    args = [
        "wrk",
        f"-t{threads}",
        f"-c{concurrency}",
        f"-d{seconds:.0f}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        f"http://127.0.0.1:{port}",
    ]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=seconds + 120)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0 or not report.exists():
        raise RuntimeError(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    values = dict(line.split() for line in report.read_text().splitlines())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return WrkRun(
        sent=int(values["sent"]),
        per_thread=[int(values[f"sent_t{t}"]) for t in range(threads)],
        answered=int(values["answered"]),
        non200=int(values["non200"]),
        socket_errors=int(values["socket_errors"]),
        seconds=int(values["duration_us"]) / 1e6,
        p50_ms=int(values["p50_us"]) / 1000,
        p90_ms=int(values["p90_us"]) / 1000,
        p99_ms=int(values["p99_us"]) / 1000,
        max_ms=int(values["max_us"]) / 1000,
        client_cpu_s=cpu,
        exhausted=int(values["exhausted"]) > 0,
    )


# --------------------------------------------------------------------------- the inbox


@dataclass(slots=True)
class InboxCheck:
    rows: int = 0
    lost: int = 0
    doubled: int = 0
    unanswered: int = 0  # sent when wrk stopped, never answered: may or may not be a row
    handled: int = 0
    failed: int = 0
    received: int = 0
    errors: list[str] = field(default_factory=list)


async def seed_faq(url: str) -> None:
    """The FAQ as Q&A rules (`--qa-rules`), saved as an operator's would be."""
    from app.db import create_engine, create_sessionmaker, session_scope
    from bots.qa.service import create_rule

    engine = create_engine(url)
    try:
        async with session_scope(create_sessionmaker(engine)) as session:
            for keyword, reply in FAQ:
                fields = {"patterns": [keyword], "mode": "contains", "reply": reply}
                await create_rule(session=session, fields=fields, now=datetime.now(UTC))
    finally:
        await engine.dispose()


async def replies(url: str) -> Counter[str]:
    """Q&A answers by channel: `passive_reply` carried in the callback's answer, else a
    pending app message."""
    from sqlalchemy import text

    from app.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            query = text("SELECT channel, count(*) FROM outbox GROUP BY channel")
            return Counter({str(c): int(n) for c, n in (await conn.execute(query)).all()})
    finally:
        await engine.dispose()


async def _drained(url: str, patience: float) -> float | None:
    from sqlalchemy import text

    from app.db import create_engine

    # Whether any row waits, not how many: a count reads every waiting row, and this poll's
    # cost is in the machine's CPU per event.
    query = text("SELECT count(*) FROM (SELECT 1 FROM inbox WHERE status = 'received' LIMIT 1) w")
    started = time.monotonic()
    engine = create_engine(url)  # one engine and connection for every poll: cheap to ask
    try:
        async with engine.connect() as conn:
            while time.monotonic() - started < patience:
                if int((await conn.execute(query)).scalar_one()) == 0:
                    return time.monotonic() - started
                await conn.rollback()  # the next poll reads a fresh snapshot
                await asyncio.sleep(DRAIN_POLL_S)
    finally:
        await engine.dispose()
    return None


def wait_drained(url: str, *, patience: float) -> float | None:
    """Seconds until no inbox row is `received`; None when `patience` ran out."""
    return asyncio.run(_drained(url, patience))


async def check_inbox(url: str, expected: set[str], unanswered: int) -> InboxCheck:
    from sqlalchemy import text

    from app.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            rows = (await conn.execute(text("SELECT status, body, last_error FROM inbox"))).all()
    finally:
        await engine.dispose()
    check = InboxCheck(rows=len(rows), unanswered=unanswered)
    seen: Counter[str] = Counter()
    for status, body, error in rows:
        seen[identity(body)] += 1
        check.handled += status == "handled"
        check.received += status == "received"
        if status == "failed":
            check.failed += 1
            if len(check.errors) < 3:
                check.errors.append(str(error)[:200])
    # Requests in flight when wrk stopped were never answered: each may be recorded or not.
    check.lost = max(0, len(expected - seen.keys()) - unanswered)
    check.doubled = sum(n - 1 for n in seen.values())
    unexpected = seen.keys() - expected
    if unexpected:
        check.errors.append(f"{len(unexpected)} rows of events wrk never sent")
    return check


# --------------------------------------------------------------------------- one backend


@dataclass(slots=True)
class Result:
    name: str
    intake: WrkRun
    bare: WrkRun
    null: WrkRun
    events: int  # unique events sent in the timed run
    sustained_s: float | None  # load start → every handler ran
    server_cpu_s: float
    machine_cpu_s: float  # every CPU's busy time over the same span, wrk's own taken out
    check: InboxCheck
    problems: Counter[str]
    replies: Counter[str] = field(default_factory=Counter)

    @property
    def ratio(self) -> float:
        return self.intake.rate / self.bare.rate if self.bare.rate else 0.0

    @property
    def valid(self) -> bool:
        return self.null.rate >= VALID_FACTOR * self.intake.rate

    @property
    def sustained(self) -> float:
        return self.events / self.sustained_s if self.sustained_s else 0.0

    @property
    def cpu_ms(self) -> float:
        return self.server_cpu_s * 1000 / self.events if self.events else math.nan

    @property
    def machine_cpu_ms(self) -> float:
        """CPU per event of the whole machine but wrk: PostgreSQL's server processes included
        (on SQLite the database works inside `campbot serve`), and the drain poll's."""
        return self.machine_cpu_s * 1000 / self.events if self.events else math.nan

    @property
    def correct(self) -> bool:
        c = self.check
        return (
            not self.intake.exhausted
            and self.intake.non200 == 0
            and self.intake.socket_errors == 0
            and self.sustained_s is not None
            and c.lost == 0
            and c.doubled == 0
            and c.failed == 0
            and c.received == 0
            and not c.errors
        )


@dataclass(frozen=True, slots=True)
class Options:
    seconds: float
    concurrency: int
    threads: int
    events: int
    duplicates: float
    seed: int
    drain_timeout: float
    serve_args: tuple[str, ...]
    py_spy: Path | None = None
    qa_rules: bool = False
    share_text: float = SHARE_TEXT
    workers: int = 0  # `campbot worker` processes; the server then runs no handler


def _workloads(options: Options, workdir: Path) -> tuple[Workload, Path, Workload, Path]:
    now = datetime.now(UTC)
    started = time.perf_counter()
    warm = build_workload(
        events=500,
        duplicates=options.duplicates,
        seed=options.seed,
        now=now,
        serial_from=0,
        share_text=options.share_text,
    )
    timed = build_workload(
        events=options.events,
        duplicates=options.duplicates,
        seed=options.seed + 1,
        now=now,
        serial_from=10_000_000,
        share_text=options.share_text,
    )
    warm_file, timed_file = workdir / "warm.txt", workdir / "timed.txt"
    warm.write(warm_file)
    timed.write(timed_file)
    print(
        f"built {len(warm.lines) + len(timed.lines)} signed callbacks in "
        f"{time.perf_counter() - started:.1f} s (timed run: {dict(timed.kinds)})",
        flush=True,
    )
    return warm, warm_file, timed, timed_file


def _py_spy(pid: int, to: Path | None, key: str) -> subprocess.Popen[bytes] | None:
    """py-spy sampling the server (and its children) into `to`, collapsed stacks."""
    if to is None:
        return None
    out = to.with_name(f"{to.stem}-{key}.txt")
    args = ["py-spy", "record", "--pid", str(pid), "--subprocesses", "--threads"]
    args += ["--format", "raw", "--rate", "250", "--output", str(out)]
    return subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def bench_backend(backend: Backend, options: Options, workdir: Path) -> Result:
    print(f"\n[{backend.name}] fresh schema …", flush=True)
    asyncio.run(fresh_schema(backend.url, backend.sqlite_file))
    if options.qa_rules:
        asyncio.run(seed_faq(backend.url))
    warm, warm_file, timed, timed_file = _workloads(options, workdir)
    env = server_env(backend.url)
    if options.workers:
        env["CAMPBOT_HANDLERS"] = "worker"
    wrk: Callable[..., WrkRun] = lambda port, file, seconds, wrap: run_wrk(  # noqa: E731
        port,
        file,
        workdir=workdir,
        seconds=seconds,
        concurrency=options.concurrency,
        threads=options.threads,
        wrap=wrap,
    )
    server = Server(
        "",
        env=env,
        workdir=workdir,
        name=f"campbot-{backend.key}",
        command=campbot_serve(*options.serve_args, workers=options.workers),
    )
    try:
        print(f"[{backend.name}] campbot serve pid {server.process.pid} port {server.port}")
        warmup = wrk(server.port, warm_file, 3, False)
        if wait_drained(backend.url, patience=options.drain_timeout) is None:
            raise RuntimeError("the warm-up's handlers did not drain")
        spy = _py_spy(server.process.pid, options.py_spy, backend.key)
        cpu, machine = server.cpu_seconds(), machine_ticks()[0]
        started = time.monotonic()
        intake = wrk(server.port, timed_file, options.seconds, False)
        drained = wait_drained(backend.url, patience=options.drain_timeout)
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(60)
        sustained_s = None if drained is None else time.monotonic() - started
        server_cpu = server.cpu_seconds() - cpu
        machine_cpu = (machine_ticks()[0] - machine) / os.sysconf("SC_CLK_TCK")
        problems = server.log_problems()
    finally:
        server.stop()
    events_sent = timed.sent_identities(intake.per_thread)
    expected = warm.sent_identities(warmup.per_thread) | events_sent
    events = len(events_sent)
    unanswered = (warmup.sent - warmup.answered) + (intake.sent - intake.answered)
    check = asyncio.run(check_inbox(backend.url, expected, max(unanswered, 0)))
    answers = asyncio.run(replies(backend.url))
    baseline = partial(
        _baseline,
        wrk=wrk,
        env=env,
        workdir=workdir,
        key=backend.key,
        files=(warm_file, timed_file),
        seconds=options.seconds,
    )
    bare, null = baseline("bare_app"), baseline("null_app")
    machine_cpu -= intake.client_cpu_s
    return Result(
        backend.name,
        intake,
        bare,
        null,
        events,
        sustained_s,
        server_cpu,
        machine_cpu,
        check,
        problems,
        answers,
    )


def _baseline(
    app: str,
    *,
    wrk: Callable[..., WrkRun],
    env: dict[str, str],
    workdir: Path,
    key: str,
    files: tuple[Path, Path],
    seconds: float,
) -> WrkRun:
    """One of this module's apps, driven like CampBot (wrapping around the same requests)."""
    server = Server(f"bench.callback_ingest:{app}", env=env, workdir=workdir, name=f"{app}-{key}")
    try:
        warm_file, timed_file = files
        wrk(server.port, warm_file, 2, True)
        return wrk(server.port, timed_file, seconds, True)
    finally:
        server.stop()


# --------------------------------------------------------------------------- report


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


def report(r: Result) -> None:
    i, b = r.intake, r.bare
    invalid = "" if r.valid else "  INVALID: the null endpoint did not reach 3× CampBot's rate"
    per_core = 1000 / r.cpu_ms if r.cpu_ms else 0.0
    rows = [
        ("", "CampBot", "bare", "target"),
        ("answered/s (intake)", f"{i.rate:8.0f}", f"{b.rate:8.0f}", ""),
        (
            "null endpoint answered/s",
            f"{r.null.rate:8.0f}",
            "",
            f">= {VALID_FACTOR:.0f}× CampBot: wrk is not the limit  {_mark(r.valid)}",
        ),
        (
            "ratio CampBot/bare",
            f"{r.ratio:8.2f}",
            "",
            f">= {TARGET_RATIO}  {_mark(r.ratio >= TARGET_RATIO)}{invalid}",
        ),
        ("p50 / p90 (ms)", f"{i.p50_ms:.1f} / {i.p90_ms:.1f}", f"{b.p50_ms:.1f}", ""),
        (
            "p99 / max (ms)",
            f"{i.p99_ms:.1f} / {i.max_ms:.0f}",
            f"{b.p99_ms:.1f}",
            f"p99 < {TARGET_P99_MS:.0f}  {_mark(i.p99_ms < TARGET_P99_MS)}",
        ),
        ("wrk busy (of a core)", f"{i.client_busy:8.0%}", f"{b.client_busy:8.0%}", ""),
        ("events sent (unique)", f"{r.events:8d}", "", ""),
        (
            "sustained events/s",
            f"{r.sustained:8.0f}",
            "",
            "load start → every handler ran" + ("" if r.sustained_s else "  DRAIN TIMED OUT"),
        ),
        (
            "server CPU per event",
            f"{r.cpu_ms:6.2f} ms",
            "",
            f"<= {TARGET_CPU_MS:.0f} ms  {_mark(r.cpu_ms <= TARGET_CPU_MS)}",
        ),
        (
            "events/s per core",
            f"{per_core:8.0f}",
            "",
            f">= {TARGET_PER_CORE:.0f}  {_mark(per_core >= TARGET_PER_CORE)}",
        ),
        (
            "machine CPU per event",
            f"{r.machine_cpu_ms:6.2f} ms",
            "",
            f"<= {TARGET_CPU_MS:.0f} ms  {_mark(r.machine_cpu_ms <= TARGET_CPU_MS)}"
            "  all CPUs but wrk's: the database server's too",
        ),
        (
            "inbox rows / lost / doubled",
            f"{r.check.rows} / {r.check.lost} / {r.check.doubled}",
            "",
            f"0 lost, 0 doubled  {_mark(r.check.lost == 0 == r.check.doubled)}",
        ),
        ("in flight at wrk's stop", f"{r.check.unanswered:8d}", "", "(may or may not be rows)"),
        (
            "handled / failed / left",
            f"{r.check.handled} / {r.check.failed} / {r.check.received}",
            "",
            "",
        ),
        (
            "non-200 / socket errors",
            f"{i.non200} / {i.socket_errors}",
            f"{b.non200} / {b.socket_errors}",
            "0 / 0",
        ),
        (
            "Q&A answers passive / app",
            f"{r.replies['passive_reply']} / {r.replies['app_message']}",
            "",
            "warm-up included; app: the callback had stopped waiting",
        ),
    ]
    print(f"\n== {r.name} ==")
    for label, a, bb, t in rows:
        print(f"  {label:<28} {a:>16} {bb:>10}   {t}")
    for error in r.check.errors:
        print(f"  inbox: {error}")
    if r.problems:
        print("  server log (count: line):")
        for line, count in r.problems.most_common(10):
            print(f"    {count:5d}: {line}")
    if i.exhausted:
        print("  RAN OUT of prepared callbacks before the end: rerun with more --events")
    if max(i.client_busy, b.client_busy, r.null.client_busy) > 0.8:
        print("  note: wrk was near a full core: the load generator may have been the limit")


def summary(results: list[Result]) -> None:
    print("\n== summary (concurrency as run; targets: ratio >= 0.4, p99 < 100 ms, ")
    print("   >= 1,000 events/s per core, <= 1 ms CPU per event) ==")
    print(
        f"  {'backend':<20} {'ans/s':>7} {'bare':>7} {'null':>7} {'ratio':>6} {'p50':>6} "
        f"{'p99':>6} "
        f"{'sust/s':>7} {'cpu ms':>7} {'mach ms':>7}  valid  correct"
    )
    for r in results:
        print(
            f"  {r.name:<20} {r.intake.rate:7.0f} {r.bare.rate:7.0f} {r.null.rate:7.0f} "
            f"{r.ratio:6.2f} "
            f"{r.intake.p50_ms:6.1f} {r.intake.p99_ms:6.1f} {r.sustained:7.0f} "
            f"{r.cpu_ms:7.2f} {r.machine_cpu_ms:7.2f}  {'yes' if r.valid else 'NO':<5}  "
            f"{'yes' if r.correct else 'NO'}"
        )


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of wrk load")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument(
        "--events", type=int, default=80_000, help="unique callbacks prepared (an upper bound)"
    )
    parser.add_argument("--duplicates", type=float, default=0.05, help="share of retries")
    parser.add_argument("--seed", type=int, default=20260301)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument(
        "--serve-arg",
        action="append",
        default=[],
        help="an extra argument for `campbot serve` (repeatable)",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        help="sample the server with py-spy during the timed run and the drain, writing "
        "collapsed stacks to this path (-sqlite/-postgresql added); figures then include "
        "the sampling's cost",
    )
    add_backend_option(parser)
    parser.add_argument(
        "--share-text",
        type=float,
        default=SHARE_TEXT,
        help="share of members' texts among the events (the rest: enter_agent, which no "
        "handler runs); 0 measures intake alone",
    )
    parser.add_argument(
        "--qa-rules",
        action="store_true",
        help="save a three-rule FAQ first, so that some texts get answers (passive replies)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="run the handlers in this many `campbot worker` processes (nice 10) beside the "
        "server, which then only records (CAMPBOT_HANDLERS=worker; Q&A answers go as app "
        "messages); their CPU counts as the server's",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (logs, files)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk; ./run bench installs it)")
        return 1
    if args.py_spy is not None and shutil.which("py-spy") is None:
        print("py-spy is not installed (pip install py-spy; it is in the dev extra)")
        return 1
    options = Options(
        seconds=args.duration,
        concurrency=args.concurrency,
        threads=args.threads,
        events=args.events,
        duplicates=args.duplicates,
        seed=args.seed,
        drain_timeout=args.drain_timeout,
        serve_args=tuple(args.serve_arg),
        py_spy=args.py_spy,
        qa_rules=args.qa_rules,
        share_text=args.share_text,
        workers=args.workers,
    )
    workdir = Path(tempfile.mkdtemp(prefix="campbot-bench-"))
    results: list[Result] = []
    try:
        for backend in backends(workdir, args.backend, sqlite_name="bench.db"):
            results.append(bench_backend(backend, options, workdir))
            report(results[-1])
    finally:
        if args.keep:
            print(f"\nkept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if results:
        summary(results)
    return 0 if results and all(r.correct for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
