"""Callback intake benchmark: the real server against a bare FastAPI app, per backend.

    python bench/callback_ingest.py            # SQLite; PostgreSQL too when
                                               # CAMPBOT_BENCH_POSTGRES_URL is set

For each backend this starts `uvicorn app.main:app` as a subprocess on 127.0.0.1
(fake WeCom credentials, a fresh schema), posts pre-built signed, encrypted callbacks
from a separate load-generator process (httpx, fixed concurrency; a share of them
are WeCom-style retries: the very same signed request sent again after the first
was answered), then waits for the handlers to drain and checks the `inbox` table:
one row per unique event, each `handled` exactly once, none `failed`. The same
requests are then sent to a bare FastAPI app (`bare_app` below) served the same
way, for the intake/bare throughput ratio. It is a benchmark, not a test: it
prints figures beside their targets and exits 1 only when correctness fails
(a bad response, a lost or doubled event), never for a missed speed target.
"""

# A script that reports by printing.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import multiprocessing
import random
import shutil
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

# Run as `python bench/callback_ingest.py`: the repo root is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._support import (  # after the sys.path line above
    AES_KEY,
    AGENT_ID,
    CORP_ID,
    HOST,
    TOKEN,
    Backend,
    Server,
    add_backend_option,
    backends,
    fresh_schema,
    server_env,
)

if TYPE_CHECKING:  # imported where used: the load generator's process stays light
    from sqlalchemy.ext.asyncio import AsyncEngine

    from app.wecom_sandbox.callbacks import SignedCallback

TARGET_RATIO = 0.4
TARGET_P99_SQLITE_MS = 100.0
# WeCom takes a welcome message only within 20 s of the add event; a welcome handler
# starts no later than any handler here (it would be served first).
TARGET_LAG_S = 20.0
LOAD_TIMEOUT_S = 600.0
REQUEST_TIMEOUT_S = 30.0
WARMUP_REQUESTS = 200
# A retry is sent only after its original was answered, and at least this many
# requests later in the sequence (WeCom retries seconds later, not at once).
RETRY_MIN_GAP, RETRY_MAX_GAP = 64, 640

# The event mix of a busy camp launch: mostly students adding staff.
SHARE_TEXT = 0.12
SHARE_CHAT = 0.08
STAFF = [f"camp_staff_{i:02d}" for i in range(12)]
CHANNELS = [f"camp2026spring_ch{i}" for i in range(8)]
GROUPS = [f"wrBenchGroup{i:03d}AAAAAAAAAAAAAAAAAA" for i in range(20)]
TEXTS = [
    "老师好，请问今晚几点开课？",
    "收到，谢谢！",
    "作业已提交",
    "请问回放在哪里看？",
    "打卡第3天",
    "hello",
    "我想报名进阶班",
    "链接打不开怎么办",
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


# --------------------------------------------------------------------------- workload


@dataclass(frozen=True, slots=True)
class Post:
    path: str
    body: bytes
    retry_of: int  # index in the request list of the original, or -1


@dataclass(slots=True)
class Workload:
    posts: list[Post]
    identities: set[str]  # one per unique event, as `identity()` reads it from a body
    contacts: int  # distinct external contacts added (=> member rows)
    memberships: int  # distinct (group, member) pairs joined (=> group_membership rows)
    kinds: Counter[str] = field(default_factory=Counter)


def _cdata(name: str, value: str) -> str:
    return f"<{name}><![CDATA[{value}]]></{name}>"


def _contact_xml(*, create_time: int, staff: str, external: str, state: str, code: str) -> str:
    return (
        "<xml>"
        + _cdata("ToUserName", CORP_ID)
        + _cdata("FromUserName", "sys")
        + f"<CreateTime>{create_time}</CreateTime>"
        + _cdata("MsgType", "event")
        + _cdata("Event", "change_external_contact")
        + _cdata("ChangeType", "add_external_contact")
        + _cdata("UserID", staff)
        + _cdata("ExternalUserID", external)
        + _cdata("State", state)
        + _cdata("WelcomeCode", code)
        + "</xml>"
    )


def _text_xml(*, create_time: int, sender: str, content: str, msg_id: str) -> str:
    return (
        "<xml>"
        + _cdata("ToUserName", CORP_ID)
        + _cdata("FromUserName", sender)
        + f"<CreateTime>{create_time}</CreateTime>"
        + _cdata("MsgType", "text")
        + _cdata("Content", content)
        + f"<MsgId>{msg_id}</MsgId>"
        + f"<AgentID>{AGENT_ID}</AgentID></xml>"
    )


def _chat_xml(
    *,
    create_time: int,
    chat_id: str,
    members: list[str],
    scene: int,
    last_ver: str,
    cur_ver: str,
    new_format: bool,
) -> str:
    if new_format:
        change_list = (
            "<MemChangeList>" + "".join(_cdata("Item", m) for m in members) + "</MemChangeList>"
        )
    else:
        change_list = _cdata("MemChangeList", ",".join(members))
    return (
        "<xml>"
        + _cdata("ToUserName", CORP_ID)
        + _cdata("FromUserName", "sys")
        + f"<CreateTime>{create_time}</CreateTime>"
        + _cdata("MsgType", "event")
        + _cdata("Event", "change_external_chat")
        + _cdata("ChatId", chat_id)
        + _cdata("ChangeType", "update")
        + _cdata("UpdateDetail", "add_member")
        + f"<JoinScene>{scene}</JoinScene><MemChangeCnt>{len(members)}</MemChangeCnt>"
        + change_list
        + (_cdata("LastMemVer", last_ver) if last_ver else "")
        + _cdata("CurMemVer", cur_ver)
        + "</xml>"
    )


def identity(plaintext: str) -> str:
    """What makes a generated event unique, read back from an inbox row's body."""
    root = ET.fromstring(plaintext)  # our own generated XML

    def get(name: str) -> str:
        return (root.findtext(name) or "").strip()

    if get("MsgType") == "text":
        return "text:" + get("MsgId")
    if get("Event") == "change_external_contact":
        return "contact:" + get("ExternalUserID")
    if get("Event") == "change_external_chat":
        return f"chat:{get('ChatId')}:{get('CurMemVer')}"
    return "unknown:" + plaintext[:80]


def _units(rng: random.Random, *, contacts: int, texts: int, chats: int) -> list[tuple[str, int]]:
    """Units of posting order: a burst of contacts (same second, same staff member, the
    same channel QR code), or one text message, or one group join; shuffled."""
    units: list[tuple[str, int]] = []
    left = contacts
    while left:
        size = min(left, rng.choice((1, 2, 3, 4, 5, 6)))
        units.append(("contact", size))
        left -= size
    units += [("text", 1)] * texts + [("chat", 1)] * chats
    rng.shuffle(units)
    return units


@dataclass(slots=True)
class _Events:
    """The unique events' plaintexts, in posting order, drawn from one seeded generator."""

    rng: random.Random
    plaintexts: list[tuple[str, str]] = field(default_factory=list)  # (kind, xml)
    identities: set[str] = field(default_factory=set)
    memberships: set[tuple[str, str]] = field(default_factory=set)
    versions: dict[str, str] = field(default_factory=dict)
    contact_ids: list[str] = field(default_factory=list)
    serial: int = 0

    def contacts(self, size: int, create_time: int) -> None:
        rng = self.rng
        staff, state = rng.choice(STAFF), rng.choice(CHANNELS)
        for _ in range(size):
            self.serial += 1
            external = f"wmBench{self.serial:07d}{rng.getrandbits(40):010x}"
            self.contact_ids.append(external)
            xml = _contact_xml(
                create_time=create_time,
                staff=staff,
                external=external,
                state=state,
                code=f"WELCOME{rng.getrandbits(64):016x}",
            )
            self.plaintexts.append(("contact", xml))
            self.identities.add("contact:" + external)

    def text(self, create_time: int) -> None:
        rng = self.rng
        self.serial += 1
        msg_id = str(7_300_000_000_000_000_000 + self.serial * 1_000 + rng.randrange(1_000))
        xml = _text_xml(
            create_time=create_time,
            sender=rng.choice(STAFF),
            content=rng.choice(TEXTS),
            msg_id=msg_id,
        )
        self.plaintexts.append(("text", xml))
        self.identities.add("text:" + msg_id)

    def _joining(self, chat: str) -> list[str]:
        rng, serial = self.rng, self.serial
        pool = self.contact_ids[-200:] or [f"wmNoContactYet{serial}"]
        members: list[str] = []
        for _ in range(rng.choice((1, 1, 1, 2, 3))):
            member = rng.choice(pool) if rng.random() < 0.7 else f"woBenchGuest{serial}x{_}"
            if (chat, member) not in self.memberships and member not in members:
                members.append(member)
        return members or [f"woBenchGuest{serial}"]

    def chat(self, create_time: int) -> None:
        rng = self.rng
        self.serial += 1
        chat = rng.choice(GROUPS)
        members = self._joining(chat)
        self.memberships.update((chat, m) for m in members)
        cur = f"{rng.getrandbits(128):032x}"
        xml = _chat_xml(
            create_time=create_time,
            chat_id=chat,
            members=members,
            scene=rng.choice((1, 3)),
            last_ver=self.versions.get(chat, ""),
            cur_ver=cur,
            new_format=rng.random() < 0.5,
        )
        self.plaintexts.append(("chat", xml))
        self.versions[chat] = cur
        self.identities.add(f"chat:{chat}:{cur}")


def _with_retries(signed: list[SignedCallback], rng: random.Random, retries: int) -> list[Post]:
    """The requests: every event once, and `retries` of them again, RETRY_MIN_GAP..MAX_GAP
    requests after their first (the same signed request)."""
    unique = len(signed)
    order: list[tuple[float, int, int]] = [(float(i), i, -1) for i in range(unique)]
    for original in rng.sample(range(unique), retries):
        gap = rng.randint(RETRY_MIN_GAP, RETRY_MAX_GAP)
        order.append((original + gap + 0.5, original, original))
    order.sort()
    position: dict[int, int] = {}
    posts: list[Post] = []
    for index, (_, event, retry_of) in enumerate(order):
        callback = signed[event]
        if retry_of < 0:
            position[event] = index
            posts.append(Post(callback.path, callback.body.encode(), -1))
        else:
            posts.append(Post(callback.path, callback.body.encode(), position[retry_of]))
    return posts


def build_workload(*, requests: int, duplicates: float, seed: int, now: datetime) -> Workload:
    """All signed callbacks, built before any timing: unique events, then retries spliced in."""
    from app.wecom.crypto import CallbackCrypto
    from app.wecom_sandbox.callbacks import CallbackBuilder

    rng = random.Random(seed)
    n_retries = round(requests * duplicates)
    n_unique = requests - n_retries
    n_text = round(n_unique * SHARE_TEXT)
    n_chat = round(n_unique * SHARE_CHAT)
    n_contact = n_unique - n_text - n_chat
    units = _units(rng, contacts=n_contact, texts=n_text, chats=n_chat)
    events = _Events(rng)
    create_time = int(now.timestamp()) - 3 * 3600  # a launch evening, hours ago
    for kind, size in units:
        create_time += rng.choice((0, 0, 1, 1, 2, 3))
        if kind == "contact":
            events.contacts(size, create_time)
        elif kind == "text":
            events.text(create_time)
        else:
            events.chat(create_time)
    assert len(events.identities) == n_unique == len(events.plaintexts)
    builder = CallbackBuilder(
        CallbackCrypto(token=TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID),
        agent_id=AGENT_ID,
    )
    signed = [builder.post(xml, at=now) for _, xml in events.plaintexts]
    return Workload(
        posts=_with_retries(signed, rng, n_retries),
        identities=events.identities,
        contacts=n_contact,
        memberships=len(events.memberships),
        kinds=Counter(kind for kind, _ in events.plaintexts),
    )


# --------------------------------------------------------------------------- load generator


@dataclass(slots=True)
class LoadResult:
    seconds: float
    latencies_ms: list[float]
    ok: int
    bad: Counter[str]
    retries_waited: int
    client_busy: float  # load generator CPU / wall time (1.0 = a whole core)
    server_cpu_s: float = 0.0  # server process CPU over the run (and, for intake, the drain)

    def server_cpu_ms_per_request(self) -> float:
        return self.server_cpu_s * 1000 / len(self.latencies_ms) if self.latencies_ms else 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        values = sorted(self.latencies_ms)
        if not values:
            return float("nan")
        return values[max(0, math.ceil(q * len(values)) - 1)]


@dataclass(slots=True)
class _Tally:
    """What the workers saw; they share it (one event loop: no locking needed)."""

    posts: list[Post]
    rate: float | None
    headers: dict[str, str]
    answered: dict[int, asyncio.Event]
    latencies: list[float] = field(default_factory=list)
    bad: Counter[str] = field(default_factory=Counter)
    ok: int = 0
    waited: int = 0
    paced_from: float = 0.0  # loop time the run started (read by paced workers)

    async def worker(self, client: httpx.AsyncClient, cursor: Iterator[int]) -> None:
        loop = asyncio.get_running_loop()
        for index in cursor:
            post = self.posts[index]
            if self.rate:
                await asyncio.sleep(self.paced_from + index / self.rate - loop.time())
            if post.retry_of >= 0 and not self.answered[post.retry_of].is_set():
                self.waited += 1
                await asyncio.wait_for(self.answered[post.retry_of].wait(), REQUEST_TIMEOUT_S)
            await self._post(client, post, index)

    async def _post(self, client: httpx.AsyncClient, post: Post, index: int) -> None:
        started = time.perf_counter()
        try:
            response = await client.post(post.path, content=post.body, headers=self.headers)
            self.latencies.append((time.perf_counter() - started) * 1000)
            if response.status_code == 200 and response.text == "success":
                self.ok += 1
            else:
                self.bad[f"{response.status_code} {response.text[:60]!r}"] += 1
        except httpx.HTTPError as exc:
            self.bad[type(exc).__name__] += 1
        finally:
            if index in self.answered:
                self.answered[index].set()


async def _timed_run(tally: _Tally, clients: list[httpx.AsyncClient]) -> tuple[float, float]:
    """Every post through the workers; (seconds, client CPU / wall time)."""
    cursor = iter(range(len(tally.posts)))
    # No garbage collection in the load generator while timing: its full collections
    # (~80 ms here) would stall every in-flight request and be counted as server latency.
    gc.collect()
    gc.disable()
    try:
        cpu_started = time.process_time()
        started = time.perf_counter()
        tally.paced_from = asyncio.get_running_loop().time()
        await asyncio.gather(*(tally.worker(client, cursor) for client in clients))
        seconds = time.perf_counter() - started
    finally:
        gc.enable()
    return seconds, (time.process_time() - cpu_started) / seconds if seconds else 0.0


async def _load(
    port: int, posts: list[Post], concurrency: int, rate: float | None = None
) -> LoadResult:
    """`concurrency` workers, each with its own keep-alive connection, share one cursor.

    With `rate`, request i is not sent before i / rate seconds into the run (an open-loop
    pace, as from WeCom on an ordinary busy evening) instead of as soon as a worker is free.

    One httpx.AsyncClient per worker (limits: one connection each, so `concurrency`
    connections in all): a single client whose pool holds 32 connections spends
    ~3x the CPU per request (its pool is scanned per request) and would measure
    itself rather than the server.
    """
    base = f"http://{HOST}:{port}"
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    timeout = httpx.Timeout(REQUEST_TIMEOUT_S)
    clients = [
        httpx.AsyncClient(base_url=base, limits=limits, timeout=timeout, trust_env=False)
        for _ in range(concurrency)
    ]
    try:
        # Warm-up: open every connection (not timed, writes nothing).
        for _ in range(max(1, WARMUP_REQUESTS // concurrency)):
            await asyncio.gather(*(client.get("/healthz") for client in clients))
        answered = {p.retry_of: asyncio.Event() for p in posts if p.retry_of >= 0}
        tally = _Tally(posts, rate, {"content-type": "text/xml"}, answered)
        seconds, client_busy = await _timed_run(tally, clients)
    finally:
        await asyncio.gather(*(client.aclose() for client in clients))
    return LoadResult(seconds, tally.latencies, tally.ok, tally.bad, tally.waited, client_busy)


def _load_child(
    conn: Any, port: int, posts: list[Post], concurrency: int, rate: float | None
) -> None:
    try:
        conn.send(("ok", asyncio.run(_load(port, posts, concurrency, rate))))
    except BaseException as exc:  # report anything to the parent, then stop
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


def run_load(
    port: int, posts: list[Post], concurrency: int, rate: float | None = None
) -> LoadResult:
    """Send the posts from a separate process, so the client does not share the server's GIL."""
    ctx = multiprocessing.get_context("spawn")
    receiver, sender = ctx.Pipe(duplex=False)
    process = ctx.Process(
        target=_load_child, args=(sender, port, posts, concurrency, rate), daemon=True
    )
    process.start()
    sender.close()
    try:
        if not receiver.poll(LOAD_TIMEOUT_S):
            raise RuntimeError(f"load generator gave no result within {LOAD_TIMEOUT_S:.0f} s")
        status, payload = receiver.recv()
    finally:
        process.join(10)
        if process.is_alive():
            process.kill()
            process.join(5)
    if status != "ok":
        raise RuntimeError(f"load generator failed: {payload}")
    return payload  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- database


@dataclass(slots=True)
class InboxCheck:
    rows: int = 0
    lost: int = 0
    doubled: int = 0  # rows beyond one per event
    handled_once: int = 0
    rehandled: int = 0  # attempts > 1
    not_handled: int = 0  # still received (drain timed out)
    failed: int = 0
    members: int = 0
    memberships: int = 0
    drain_seconds: float = 0.0
    drained: bool = False
    errors: list[str] = field(default_factory=list)
    # Per handled row: seconds from the callback's arrival (received_at) to its handlers'
    # start (the handled mark, the first statement of the handler transaction).
    lags: list[float] = field(default_factory=list)
    contact_lags: list[float] = field(default_factory=list)  # add_external_contact: welcomes

    def lag(self, q: float, *, contacts: bool = False) -> float:
        values = sorted(self.contact_lags if contacts else self.lags)
        if not values:
            return float("nan")
        return values[max(0, math.ceil(q * len(values)) - 1)]


async def _drain(engine: AsyncEngine, patience: float) -> tuple[float, bool]:
    """Wait until no row is still `received` (or `patience` s); (seconds waited, drained)."""
    from sqlalchemy import text

    started = time.monotonic()
    while True:
        async with engine.connect() as conn:
            pending = (
                await conn.execute(text("SELECT count(*) FROM inbox WHERE status = 'received'"))
            ).scalar_one()
        if pending == 0 or time.monotonic() - started > patience:
            break
        await asyncio.sleep(0.1)
    return time.monotonic() - started, pending == 0


async def _read_inbox(engine: AsyncEngine, result: InboxCheck) -> tuple[list[Any], list[Any]]:
    """The inbox rows and the handled rows' times; the member counts go into `result`."""
    from sqlalchemy import select, text

    from app.models import InboxEvent

    async with engine.connect() as conn:
        rows = (
            await conn.execute(text("SELECT status, attempts, body, last_error FROM inbox"))
        ).all()
        result.members = (await conn.execute(text("SELECT count(*) FROM members"))).scalar_one()
        result.memberships = (
            await conn.execute(text("SELECT count(*) FROM group_memberships"))
        ).scalar_one()
        # Through the model, so both backends give aware datetimes.
        times = (
            await conn.execute(
                select(InboxEvent.received_at, InboxEvent.updated_at, InboxEvent.body).where(
                    InboxEvent.status == "handled"
                )
            )
        ).all()
    return list(rows), list(times)


def _count_rows(result: InboxCheck, rows: list[Any], workload: Workload) -> None:
    seen: Counter[str] = Counter()
    for status, attempts, body, last_error in rows:
        seen[identity(body)] += 1
        if status == "handled" and attempts == 1:
            result.handled_once += 1
        if attempts > 1:
            result.rehandled += 1
        if status == "received":
            result.not_handled += 1
        if status == "failed":
            result.failed += 1
            if len(result.errors) < 3:
                result.errors.append(str(last_error)[:200])
    result.rows = len(rows)
    result.lost = len(workload.identities - seen.keys())
    result.doubled = sum(n - 1 for n in seen.values() if n > 1)
    unexpected = seen.keys() - workload.identities
    if unexpected:
        result.errors.append(f"{len(unexpected)} rows for events the bench never sent")


async def check_inbox(url: str, workload: Workload, drain_timeout: float) -> InboxCheck:
    from app.db import create_engine

    result = InboxCheck()
    engine = create_engine(url)
    try:
        result.drain_seconds, result.drained = await _drain(engine, drain_timeout)
        rows, times = await _read_inbox(engine, result)
    finally:
        await engine.dispose()
    for arrived, done, body in times:
        result.lags.append((done - arrived).total_seconds())
        if identity(body).startswith("contact:"):
            result.contact_lags.append(result.lags[-1])
    _count_rows(result, rows, workload)
    return result


# --------------------------------------------------------------------------- one backend


@dataclass(slots=True)
class BackendResult:
    name: str
    intake: LoadResult
    bare: LoadResult
    check: InboxCheck
    workload: Workload
    server_problems: Counter[str]

    @property
    def ratio(self) -> float:
        return self.intake.throughput / self.bare.throughput if self.bare.throughput else 0.0

    @property
    def correct(self) -> bool:
        n = len(self.workload.posts)
        c = self.check
        return (
            self.intake.ok == n
            and self.bare.ok == n
            and c.lost == 0
            and c.doubled == 0
            and c.rehandled == 0
            and c.failed == 0
            and c.not_handled == 0
            and c.handled_once == len(self.workload.identities)
            and not c.errors
        )


def bench_backend(
    backend: Backend,
    workload: Workload,
    *,
    concurrency: int,
    workdir: Path,
    drain_timeout: float,
    profile_dir: Path | None,
    rate: float | None = None,
) -> BackendResult:
    key, name, url = backend.key, backend.name, backend.url
    print(f"\n[{name}] fresh schema …", flush=True)
    asyncio.run(fresh_schema(url))
    env = server_env(url)
    profile_to = profile_dir / f"intake-{key}.prof" if profile_dir else None

    server = Server(
        "app.main:app", env=env, workdir=workdir, name=f"intake-{key}", profile_to=profile_to
    )
    try:
        print(
            f"[{name}] intake server pid {server.process.pid} on port {server.port}; "
            f"posting {len(workload.posts)} callbacks at concurrency {concurrency}"
            + (f", paced at {rate:.0f}/s" if rate else "")
            + " …",
            flush=True,
        )
        cpu = server.cpu_seconds()
        intake = run_load(server.port, workload.posts, concurrency, rate)
        check = asyncio.run(check_inbox(url, workload, drain_timeout))
        intake.server_cpu_s = server.cpu_seconds() - cpu
        problems = server.log_problems()
    finally:
        server.stop()

    bare_server = Server(
        "bench.callback_ingest:bare_app", env=env, workdir=workdir, name=f"bare-{key}"
    )
    try:
        print(
            f"[{name}] bare app pid {bare_server.process.pid} on port {bare_server.port}; "
            "same requests …",
            flush=True,
        )
        cpu = bare_server.cpu_seconds()
        bare = run_load(bare_server.port, workload.posts, concurrency, rate)
        bare.server_cpu_s = bare_server.cpu_seconds() - cpu
    finally:
        bare_server.stop()
    return BackendResult(name, intake, bare, check, workload, problems)


# --------------------------------------------------------------------------- report


def _mark(ok: bool) -> str:
    return "ok" if ok else "MISS"


Row = tuple[str, str, str, str]  # label, intake, bare, target


def _speed_rows(result: BackendResult, *, sqlite: bool) -> list[Row]:
    i, b = result.intake, result.bare
    p99_target = (
        f"< {TARGET_P99_SQLITE_MS:.0f} ms  {_mark(i.percentile(0.99) < TARGET_P99_SQLITE_MS)}"
        if sqlite
        else "(target is SQLite's)"
    )
    return [
        ("throughput (req/s)", f"{i.throughput:8.0f}", f"{b.throughput:8.0f}", ""),
        ("p50 latency (ms)", f"{i.percentile(0.5):8.1f}", f"{b.percentile(0.5):8.1f}", ""),
        (
            "p99 latency (ms)",
            f"{i.percentile(0.99):8.1f}",
            f"{b.percentile(0.99):8.1f}",
            p99_target,
        ),
        (
            "max latency (ms)",
            f"{max(i.latencies_ms, default=0):8.1f}",
            f"{max(b.latencies_ms, default=0):8.1f}",
            "",
        ),
        (
            "ratio intake/bare",
            f"{result.ratio:8.2f}",
            "",
            f">= {TARGET_RATIO}  {_mark(result.ratio >= TARGET_RATIO)}",
        ),
        (
            "server CPU/request (ms)",
            f"{i.server_cpu_ms_per_request():8.2f}",
            f"{b.server_cpu_ms_per_request():8.2f}",
            "intake incl. its handlers",
        ),
        ("load generator busy", f"{i.client_busy:8.0%}", f"{b.client_busy:8.0%}", "of one core"),
    ]


def _inbox_rows(result: BackendResult) -> list[Row]:
    i, b, c, w = result.intake, result.bare, result.check, result.workload
    n, unique = len(w.posts), len(w.identities)
    clean = c.lost == 0 and c.doubled == 0 and c.rehandled == 0
    members_ok = c.members == w.contacts and c.memberships == w.memberships
    return [
        ("200 'success'", f"{i.ok}/{n}", f"{b.ok}/{n}", f"all  {_mark(i.ok == n == b.ok)}"),
        ("unique events / rows", f"{unique}/{c.rows}", "", ""),
        ("lost / doubled", f"{c.lost} / {c.doubled}", "", f"0 / 0  {_mark(clean)}"),
        (
            "handled once",
            f"{c.handled_once}/{unique}",
            "",
            f"all  {_mark(c.handled_once == unique)}",
        ),
        ("handled twice+ / failed", f"{c.rehandled} / {c.failed}", "", ""),
        (
            "members / memberships",
            f"{c.members} / {c.memberships}",
            "",
            f"{w.contacts} / {w.memberships}  {_mark(members_ok)}",
        ),
    ]


def _lag_rows(check: InboxCheck) -> list[Row]:
    c = check
    return [
        (
            "handlers drained after",
            f"{c.drain_seconds:7.1f}s",
            "",
            "" if c.drained else "TIMED OUT",
        ),
        (
            "handler lag p50 / p99",
            f"{c.lag(0.5):.2f} / {c.lag(0.99):.2f}s",
            "",
            "arrival -> handlers start",
        ),
        ("handler lag max", f"{c.lag(1.0):7.2f}s", "", ""),
        (
            "  contact adds p99 / max",
            f"{c.lag(0.99, contacts=True):.2f} / {c.lag(1.0, contacts=True):.2f}s",
            "",
            f"max < {TARGET_LAG_S:.0f} s (welcome window)  "
            f"{_mark(c.lag(1.0, contacts=True) < TARGET_LAG_S)}",
        ),
    ]


def _report_notes(result: BackendResult) -> None:
    i, b, c = result.intake, result.bare, result.check
    if i.bad or b.bad:
        print(f"  bad responses: intake {dict(i.bad)}  bare {dict(b.bad)}")
    if c.errors:
        print("  inbox errors: " + " | ".join(c.errors))
    if result.server_problems:
        print("  intake server log (count: line):")
        for line, count in result.server_problems.most_common(12):
            print(f"    {count:5d}: {line}")
    if i.server_cpu_s and b.server_cpu_s:
        print(
            f"  CPU-bound ratio estimate (bare CPU/request ÷ intake CPU/request): "
            f"{b.server_cpu_ms_per_request() / i.server_cpu_ms_per_request():.2f}"
        )
    if b.client_busy > 0.8:
        print(
            "  note: the load generator was near a full core on the bare run, so the bare "
            "figure is a floor\n        and the throughput ratio flatters the intake; "
            "see the CPU-bound estimate."
        )
    print(f"  (retries that waited for their original: {i.retries_waited})")


def report(result: BackendResult, *, sqlite: bool) -> None:
    rows = [
        ("", "intake", "bare", "target"),
        *_speed_rows(result, sqlite=sqlite),
        *_inbox_rows(result),
        *_lag_rows(result.check),
    ]
    print(f"\n== {result.name} ==")
    for label, a, bb, t in rows:
        print(f"  {label:<24} {a:>12} {bb:>10}   {t}")
    _report_notes(result)


def summary(results: list[BackendResult]) -> None:
    print("\n== summary ==")
    print(
        f"  {'backend':<22} {'req/s':>7} {'bare':>7} {'ratio':>6} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'lag p99':>7} {'add max':>7} {'unique':>6} {'lost':>5} "
        f"{'doubled':>7}  correct"
    )
    for r in results:
        print(
            f"  {r.name:<22} {r.intake.throughput:7.0f} {r.bare.throughput:7.0f} "
            f"{r.ratio:6.2f} {r.intake.percentile(0.5):7.1f} {r.intake.percentile(0.99):7.1f} "
            f"{r.check.lag(0.99):6.2f}s {r.check.lag(1.0, contacts=True):6.2f}s "
            f"{len(r.workload.identities):6d} {r.check.lost:5d} {r.check.doubled:7d}  "
            f"{'yes' if r.correct else 'NO'}"
        )
    print(
        f"  targets: ratio >= {TARGET_RATIO}, p99 < {TARGET_P99_SQLITE_MS:.0f} ms on SQLite, "
        f"zero lost or doubled, contact adds' handler lag (add max) < {TARGET_LAG_S:.0f} s"
    )


# --------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument(
        "--duplicates",
        type=float,
        default=0.10,
        help="share of requests that are retries of earlier ones",
    )
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seed", type=int, default=20260301)
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    parser.add_argument(
        "--rate",
        type=float,
        help="pace the requests at this many per second (open loop) instead of "
        "sending each as soon as a worker is free; the throughput ratio "
        "then means nothing, the latencies and handler lag are the point",
    )
    add_backend_option(parser)
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the temp dir (server logs, SQLite file) and print its path",
    )
    parser.add_argument(
        "--profile-dir",
        type=Path,
        help="run the intake server under cProfile, writing .prof files here "
        "(figures are then inflated by the profiler)",
    )
    return parser


def _workload(args: argparse.Namespace) -> Workload:
    started = time.perf_counter()
    workload = build_workload(
        requests=args.requests,
        duplicates=args.duplicates,
        seed=args.seed,
        now=datetime.now(UTC),
    )
    print(
        f"built {len(workload.posts)} signed callbacks in "
        f"{time.perf_counter() - started:.1f} s: {len(workload.identities)} unique "
        f"({dict(workload.kinds)}) + "
        f"{len(workload.posts) - len(workload.identities)} retries",
        flush=True,
    )
    return workload


def _run(args: argparse.Namespace, workdir: Path) -> list[BackendResult]:
    workload = _workload(args)
    if args.profile_dir:
        args.profile_dir.mkdir(parents=True, exist_ok=True)
    results: list[BackendResult] = []
    for backend in backends(workdir, args.backend, sqlite_name="bench.db"):
        results.append(
            bench_backend(
                backend,
                workload,
                concurrency=args.concurrency,
                workdir=workdir,
                drain_timeout=args.drain_timeout,
                profile_dir=args.profile_dir,
                rate=args.rate,
            )
        )
        report(results[-1], sqlite=backend.key == "sqlite")
    return results


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not 0 <= args.duplicates < 1 or args.requests < 1 or args.concurrency < 1:
        parser.error("need requests >= 1, concurrency >= 1 and 0 <= duplicates < 1")
    workdir = Path(tempfile.mkdtemp(prefix="campbot-bench-"))
    results: list[BackendResult] = []
    try:
        results = _run(args, workdir)
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
