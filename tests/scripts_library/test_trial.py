"""Trial renders in worker processes: a trial past its time or one that kills its worker is a
refusal, the runaway is stopped and the next trial runs; workers have a memory limit; no
worker outlives its pool or the app that started it."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from app.clock import ManualClock
from app.main import create_app
from app.settings import Settings
from scripts_library.errors import TemplateLimitError
from scripts_library.models import ScriptContent
from scripts_library.trial import WORKER_DIED, TrialPool
from scripts_library.variables import SAMPLE

NORMAL = ScriptContent("第1天任务", "daily", "text", "{{ student_name }}，今天是第 {{ day }} 天")


@pytest.fixture
async def pool() -> AsyncIterator[TrialPool]:
    trials = TrialPool(timeout=1.0)
    try:
        yield trials
    finally:
        trials.close()


def _state(pid: int) -> str | None:
    """The process's state letter (Z: exited, not yet reaped), None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):  # reaped before or during the read
        return None


async def _gone(pid: int, within: float = 5.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _state(pid) is None:
            return True
        await asyncio.sleep(0.05)
    return False


async def test_a_trial_renders_and_checks_in_a_worker(pool: TrialPool) -> None:
    assert await pool.problems(NORMAL, key="day1", images=None) == []
    message = await pool.render(NORMAL, SAMPLE, images=None)
    assert message.content == "小林，今天是第 3 天"
    assert await pool.run(os.getpid) != os.getpid()


async def test_a_trial_past_its_time_is_stopped_and_the_next_one_runs(pool: TrialPool) -> None:
    worker = await pool.run(os.getpid)
    with pytest.raises(TemplateLimitError, match="模板试渲染超过 1 秒仍未完成"):
        await pool.run(time.sleep, 30)
    assert await _gone(worker)  # killed, not left to sleep on
    assert await pool.problems(NORMAL, key="day1", images=None) == []


async def test_a_trial_waiting_for_a_worker_is_not_timed_out_by_the_wait() -> None:
    pool = TrialPool(workers=1, timeout=3.0)
    try:
        await pool.run(os.getpid)  # the worker is up
        # Each runs 1.8 s, within its time; the second waits 1.8 s for the worker first.
        both = await asyncio.gather(*(pool.run(eval, _SLEEP_THEN_PID) for _ in range(2)))
        assert len(set(both)) == 1  # one worker ran both, in turn; none was stopped
    finally:
        pool.close()


_SLEEP_THEN_PID = "__import__('time').sleep(1.8) or __import__('os').getpid()"


async def test_a_worker_that_dies_is_a_refusal_and_is_replaced(pool: TrialPool) -> None:
    with pytest.raises(TemplateLimitError) as refused:
        await pool.run(os._exit, 1)
    assert str(refused.value) == WORKER_DIED
    assert await pool.problems(NORMAL, key="day1", images=None) == []


async def test_a_worker_cannot_take_much_memory(pool: TrialPool) -> None:
    # 8 GiB would be granted to an unlimited process (the pages are never touched).
    with pytest.raises(MemoryError):
        await pool.run(eval, "len(bytearray(8 * 1024 ** 3))")
    assert await pool.run(eval, "len(bytearray(16 * 1024 ** 2))") == 16 * 1024**2


async def test_closing_the_pool_stops_every_worker() -> None:
    pool = TrialPool(timeout=30.0)  # room for both workers to start on a busy machine
    busy_then_pid = "__import__('time').sleep(0.5) or __import__('os').getpid()"
    workers = set(await asyncio.gather(*(pool.run(eval, busy_then_pid) for _ in range(2))))
    assert len(workers) == 2  # both were busy at once: two processes
    pool.close()
    for worker in workers:
        assert await _gone(worker)


async def test_the_app_stops_its_own_workers_with_its_lifespan(
    settings: Settings, clock: ManualClock, engine: AsyncEngine
) -> None:
    app = create_app(settings=settings, clock=clock, engine=engine, sweeper=False, scheduler=False)
    async with app.router.lifespan_context(app):
        trials: TrialPool = app.state.script_trials
        worker = await trials.run(os.getpid)
        assert _state(worker) is not None
    assert await _gone(worker)
