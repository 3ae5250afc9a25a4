"""Trial renders where a runaway template cannot hurt the server: a small pool of worker
processes, each limited in address space and processor time, awaited with a wall-clock
timeout off the event loop.

Saving a script through the admin API checks it here (validate.find_problems, which renders
it with the sample values), and a preview renders here, so the template an operator is
editing never runs in the server process before it has passed. The sandbox's own bounds
(bounds.py) refuse a runaway within milliseconds; the worker's limits are the backstop for
whatever slips past them. A trial that times out or kills its worker is refused the same
way as a template that crossed a bound: a Chinese problem, and nothing stored.

The pool is built lazily and kept warm; one whose worker died or overran is dropped (its
workers killed) and the next trial builds a fresh one. The app closes it in its lifespan.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import resource
import signal
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, TypeVar

from app.channels.messages import OutMessage
from scripts_library.errors import Problem, RenderError, TemplateLimitError
from scripts_library.images import ImageError
from scripts_library.models import MsgType, ScriptContent
from scripts_library.render import render
from scripts_library.validate import find_problems
from scripts_library.variables import RenderContext

logger = logging.getLogger(__name__)

T = TypeVar("T")
ImageLoad = Callable[[str], bytes]

WORKERS = 2
TIMEOUT_S = 5.0  # wall clock, per trial
CPU_SECONDS = 3  # processor time, per trial: past it the kernel stops the worker (SIGXCPU)
MEMORY_HEADROOM = 512 * 1024 * 1024  # address space a worker may add to what it starts with

WORKER_DIED = "模板试渲染耗尽了允许的内存或计算时间，已中止，请简化模板"
CLOSED = "服务正在停止，模板没有检查，请稍后再保存"


def timed_out(seconds: float) -> str:
    return f"模板试渲染超过 {seconds:g} 秒仍未完成，已中止，请简化模板"


@dataclass(frozen=True, slots=True)
class RenderFailure:
    """A RenderError from the worker (exceptions are not sent back: their arguments differ
    from their messages)."""

    message: str
    image: bool = False

    def error(self) -> RenderError:
        return ImageError(self.message) if self.image else RenderError(self.message)


class TrialPool:
    """Worker processes for trial renders; `await problems(...)` / `await render(...)`."""

    def __init__(self, *, workers: int = WORKERS, timeout: float = TIMEOUT_S) -> None:
        self.workers = workers
        self.timeout = timeout
        self._executor: ProcessPoolExecutor | None = None
        self._closed = False
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    async def problems(
        self, content: ScriptContent, *, key: str | None, images: ImageLoad | None
    ) -> list[Problem]:
        """validate.find_problems(content, key=key, images=images), run in a worker."""
        try:
            return await self.run(trial_problems, content, key, images)
        except TemplateLimitError as exc:
            return [Problem(_template_field(content), str(exc))]

    async def render(
        self, content: ScriptContent, context: RenderContext, *, images: ImageLoad | None
    ) -> OutMessage:
        """render.render(content, context, images=images), run in a worker; RenderError
        (TemplateLimitError when the worker overran) when it fails."""
        result = await self.run(trial_render, content, context, images)
        if isinstance(result, RenderFailure):
            raise result.error()
        return result

    async def run(self, func: Callable[..., T], *args: Any) -> T:
        """`func(*args)` in a worker; TemplateLimitError when it overran or its worker died.
        `func` must be importable by name (it is pickled by reference)."""
        for _ in range(2):
            try:
                async with self._slot():
                    executor = self._pool()
                    future = asyncio.wrap_future(executor.submit(_limited, func, *args))
                    return await asyncio.wait_for(future, self.timeout)
            except TimeoutError:
                logger.warning(
                    "trial render overran %.1f s: its workers are stopped", self.timeout
                )
                self._drop(executor)
                raise TemplateLimitError(timed_out(self.timeout)) from None
            except BrokenProcessPool:
                if self._executor is executor:  # this trial's worker died (or the first seen)
                    logger.warning("a trial render's worker died: the pool is started afresh")
                    self._drop(executor)
                    raise TemplateLimitError(WORKER_DIED) from None
                # Another trial's runaway took the pool down with this one: once more.
        raise TemplateLimitError(WORKER_DIED)

    def _slot(self) -> asyncio.Semaphore:
        """One trial per worker at a time: the timeout then counts a trial's own run, not its
        wait behind others', and a timeout stops no worker busy with another's trial. One
        semaphore per event loop (the tests share a pool across theirs)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.workers))
        return self._slots[1]

    def start(self) -> None:
        """Start a worker now, so the first save does not wait for one."""
        self._pool().submit(_limited, os.getpid)

    def close(self) -> None:
        """Stop the workers for good (waiting for none: a trial in flight fails)."""
        self._closed = True
        if self._executor is not None:
            self._drop(self._executor)

    def _pool(self) -> ProcessPoolExecutor:
        if self._closed:
            raise TemplateLimitError(CLOSED)
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers,
                # A fresh interpreter: forking the server would copy its threads' locks.
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker,
                initargs=(MEMORY_HEADROOM,),
            )
        return self._executor

    def _drop(self, executor: ProcessPoolExecutor) -> None:
        if self._executor is executor:
            self._executor = None
        workers = _workers(executor)
        executor.shutdown(wait=False, cancel_futures=True)
        for worker in workers:
            if worker.is_alive():
                worker.kill()  # a runaway would otherwise hold its CPU until its own limit
        # The executor's manager thread reaps them: nothing here waits on the event loop.


def _workers(executor: ProcessPoolExecutor) -> list[multiprocessing.process.BaseProcess]:
    # The executor names its processes only privately before Python 3.14's terminate_workers().
    processes = getattr(executor, "_processes", None) or {}
    return list(processes.values())


def _template_field(content: ScriptContent) -> str:
    return "attachments" if content.msgtype == MsgType.NEWS else "body"


# In the worker ---------------------------------------------------------------------------


def _init_worker(memory_headroom: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the server's to handle
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a worker stopped at its limit dumps nothing
    limit = _address_space() + memory_headroom
    _, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard == resource.RLIM_INFINITY or limit < hard:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _address_space() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        pages = int(statm.read().split()[0])
    return pages * os.sysconf("SC_PAGE_SIZE")


def _limited(func: Callable[..., T], *args: Any) -> T:
    """`func(*args)` with CPU_SECONDS more processor time than the worker has used so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime) + CPU_SECONDS
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))
    return func(*args)


def trial_problems(
    content: ScriptContent, key: str | None, images: ImageLoad | None
) -> list[Problem]:
    try:
        return find_problems(content, key=key, images=images)
    except MemoryError:
        return [Problem(_template_field(content), WORKER_DIED)]


def trial_render(
    content: ScriptContent, context: RenderContext, images: ImageLoad | None
) -> OutMessage | RenderFailure:
    try:
        return render(content, context, images=images)
    except RenderError as exc:
        return RenderFailure(str(exc), image=isinstance(exc, ImageError))
    except MemoryError:
        return RenderFailure(WORKER_DIED)
