"""`campbot serve --workers 2` on SQLite (the Docker image's default database): exactly one
worker leads the scheduler, and when it is killed (kill -9) another leads within seconds."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from app.migrations import upgrade
from tests.processes import HOST, campbot_env, free_port, leaders, start_campbot, wait_until

TAKEOVER_S = 10.0


def _leaders(log: Path) -> list[int]:
    """The pids that logged that they lead, in order."""
    return [pid for pid, _ in leaders(log)]


async def test_on_sqlite_one_of_two_workers_leads_and_another_takes_over_a_kill(
    tmp_path: Path,
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'campbot.db'}"
    await asyncio.to_thread(upgrade, url)
    env = campbot_env(database_url=url, api_base=f"http://{HOST}:9")
    port = free_port()
    server = start_campbot(
        ["serve", "--host", HOST, "--port", str(port), "--workers", "2"],
        env=env,
        cwd=tmp_path,
        name="workers",
    )
    log = server.log_path
    try:

        async def both_workers_up() -> bool:
            text = log.read_text(errors="replace")
            return text.count("CampBot started") >= 2 and bool(_leaders(log))

        await wait_until(both_workers_up, what="two workers started", watch=[server])
        await asyncio.sleep(3.0)  # a follower retries every second: time to (wrongly) lead
        first = _leaders(log)
        assert len(first) == 1, f"workers leading the scheduler: {first}"

        os.kill(first[0], signal.SIGKILL)  # the leading worker dies mid-work
        killed_at = time.monotonic()

        async def another_leads() -> bool:
            return len(_leaders(log)) >= 2

        # Wait past the limit, so that the measured time below is what fails, with its figure.
        await wait_until(another_leads, what="another worker leading", within=TAKEOVER_S + 5)
        took = time.monotonic() - killed_at
        successor = _leaders(log)[1]
        assert successor != first[0]
        assert took < TAKEOVER_S, f"the scheduler had no leader for {took:.1f} s"
        await asyncio.sleep(2.0)
        assert len(_leaders(log)) == 2, f"leaders after the kill: {_leaders(log)}"
    finally:
        server.stop(signal.SIGINT)
