"""The two-process part of bench/fanout.py: sender processes draining one outbox (not a
benchmark by itself).

Each child process runs the real `Sender` (limits off, its default batch and concurrency),
`ChannelDeliverer` and `WeComClient`, with its own sandbox in process as WeCom: no WeCom
server shared by the two can be the bottleneck, and what each delivered is reported back
for the duplicate and loss checks. The rows are enqueued first (not timed); the clock
starts when both children are ready and stops when both found nothing left.
"""

# A helper of a script that reports by printing.
# ruff: noqa: T201

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from bench._support import machine_ticks

CHATS = 100
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 600.0


@dataclass(slots=True)
class SendersResult:
    backend: str
    processes: int
    rows: int
    wall_s: float = 0.0
    delivered: Counter[str] = field(default_factory=Counter)
    cpu_s: list[float] = field(default_factory=list)  # each sender process
    machine_busy: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    @property
    def per_second(self) -> float:
        return self.rows / self.wall_s if self.wall_s else 0.0

    @property
    def duplicates(self) -> int:
        return sum(n - 1 for n in self.delivered.values() if n > 1)

    @property
    def losses(self) -> int:
        return self.rows - len(self.delivered)

    @property
    def correct(self) -> bool:
        sent = self.statuses.get("sent", 0) == self.rows
        return sent and not (self.duplicates or self.losses or self.errors)


def _child(url: str, ready: Any, start: Any, conn: Any) -> None:
    try:
        conn.send(("ok", asyncio.run(_drain_in_child(url, ready, start))))
    except BaseException as exc:  # report anything to the parent, then stop
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        conn.close()


async def _drain_in_child(url: str, ready: Any, start: Any) -> tuple[list[str], float]:
    from app.clock import SystemClock
    from app.wecom_sandbox.state import SandboxState
    from bench.fanout import AGENT_ID, CORP_ID, SECRET, drain, sending_through_sandbox

    clock = SystemClock()
    state = SandboxState(corp_id=CORP_ID, apps={AGENT_ID: SECRET}, clock=clock)
    for n in range(CHATS):
        state.add_appchat(f"benchchat{n:03d}", ["zhangsan", "lisi"])
    async with sending_through_sandbox(url, state, clock, {}) as (sender, _counter):
        await sender.next_due()  # connect and warm up before the clock starts
        ready.set()
        await asyncio.to_thread(start.wait, START_TIMEOUT_S)
        cpu = time.process_time()
        await drain(sender, clock)
        cpu = time.process_time() - cpu
    return [d.body["text"]["content"] for d in state.delivered("appchat")], cpu


async def senders(backend: str, url: str, *, rows: int, processes: int) -> SendersResult:
    from app.channels.messages import OutMessage
    from app.channels.reach import Channel, Destination
    from app.clock import SystemClock
    from app.db import create_engine, create_sessionmaker
    from app.sender import Sender
    from bench.fanout import enqueue_all, outbox_statuses

    result = SendersResult(backend, processes, rows)
    work = [
        (
            f"raw:{n}",
            Destination(Channel.APPCHAT, f"benchchat{n % CHATS:03d}"),
            OutMessage("text", f"第{n}条"),
        )
        for n in range(rows)
    ]
    engine = create_engine(url)
    sessions = create_sessionmaker(engine)
    try:
        await enqueue_all(sessions, work, SystemClock().now())
        ctx = multiprocessing.get_context("spawn")
        ready = [ctx.Event() for _ in range(processes)]
        start = ctx.Event()
        pipes = [ctx.Pipe(duplex=False) for _ in range(processes)]
        children = [
            ctx.Process(target=_child, args=(url, ready[n], start, pipes[n][1]), daemon=True)
            for n in range(processes)
        ]
        for child in children:
            child.start()
        for event in ready:
            await asyncio.to_thread(event.wait, START_TIMEOUT_S)
        busy, total = machine_ticks()
        started = time.perf_counter()
        start.set()
        for receiver, _ in pipes:
            if not await asyncio.to_thread(receiver.poll, RUN_TIMEOUT_S):
                result.errors.append("a sender process gave no result")
                continue
            status, payload = receiver.recv()
            if status != "ok":
                result.errors.append(payload)
                continue
            contents, cpu = payload
            result.delivered.update(contents)
            result.cpu_s.append(cpu)
        result.wall_s = time.perf_counter() - started
        busy2, total2 = machine_ticks()
        result.machine_busy = (busy2 - busy) / max(total2 - total, 1)
        for child in children:
            child.join(10)
        sender = Sender(sessions=sessions, deliver=_never, clock=SystemClock())
        result.statuses = await outbox_statuses(sender)
    finally:
        await engine.dispose()
    return result


async def _never(_row: Any) -> str:
    raise AssertionError("the parent sends nothing")


def report_senders(r: SendersResult, target: float) -> None:
    ok = "ok" if r.correct else "FAILED"
    met = "met" if r.per_second >= target else "MISSED"
    print(
        f"\n-- {r.processes} sender processes, {r.backend}: {r.rows} appchat rows, limits off, "
        "each with the sandbox in process"
    )
    print(
        f"  messages/s                   {r.per_second:8.0f}     target >= {target:.0f}   [{met}]"
    )
    print(f"  wall time                    {r.wall_s:8.2f} s")
    cpus = ", ".join(f"{c:.2f} s" for c in r.cpu_s)
    print(
        f"  CPU                          senders {cpus}; all {os.cpu_count()} CPUs "
        f"{r.machine_busy:.0%} busy (PostgreSQL's server included)"
    )
    print(f"  duplicates / losses          {r.duplicates} / {r.losses}   [{ok}]")
    print(f"  outbox rows                  {dict(r.statuses)}")
    for error in r.errors:
        print(f"  PROBLEM: {error}")
