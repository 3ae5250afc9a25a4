"""What the benchmarks share: which databases to run on, a fresh schema, and a real server.

- `backends(...)` (chosen with `--backend`, `add_backend_option`): SQLite (a temp file)
  and, when CAMPBOT_BENCH_POSTGRES_URL is set, PostgreSQL — which must be a local,
  throwaway database (`check_local`): the schema is dropped before each run.
- `fresh_schema(url)`: an empty, migrated database; `reset_postgres(url)` only empties it.
- `Server`: `python -m uvicorn APP` on 127.0.0.1 with fake WeCom credentials
  (`server_env`), healthy before it is used, stopped with SIGINT.

Not a benchmark itself (`./run bench` skips files starting with `_`).
"""

# A helper of scripts that report by printing.
# ruff: noqa: T201

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple
from urllib.parse import urlsplit

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PG_URL_ENV = "CAMPBOT_BENCH_POSTGRES_URL"
HOST = "127.0.0.1"

# Obviously fake credentials for a benchmark corp (the AES key is 43 letters/digits).
CORP_ID = "wwcampbotbench0001"
TOKEN = "campbotBenchToken"
AES_KEY = "BenchOnlyFakeKey0123456789abcdefghijklmnopq"
AGENT_ID = "1000002"
assert len(AES_KEY) == 43
assert AES_KEY.isalnum()

SERVER_START_TIMEOUT_S = 30.0
SERVER_STOP_TIMEOUT_S = 15.0


# --------------------------------------------------------------------------- databases


class Backend(NamedTuple):
    key: str  # "sqlite" | "postgresql"
    name: str  # as printed
    url: str
    sqlite_file: Path | None  # the SQLite database's file; None on PostgreSQL


def check_local(url: str) -> None:
    """Refuse a PostgreSQL URL that is not a local asyncpg one: the bench drops its schema."""
    host = urlsplit(url.replace("+asyncpg", "")).hostname
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(
            f"{PG_URL_ENV} must point at 127.0.0.1 (the bench talks to nothing "
            f"else); got host {host!r}"
        )
    if not url.startswith("postgresql+asyncpg://"):
        raise SystemExit(f"{PG_URL_ENV} must be a postgresql+asyncpg:// URL")


def add_backend_option(parser: argparse.ArgumentParser) -> None:
    """`--backend sqlite|postgresql`, repeatable: what `backends(..., only=args.backend)` runs."""
    parser.add_argument(
        "--backend",
        action="append",
        choices=("sqlite", "postgresql"),
        help="only this backend (repeatable)",
    )


def backends(workdir: Path, only: list[str] | None, *, sqlite_name: str) -> Iterator[Backend]:
    """SQLite in `workdir`, then PostgreSQL when its URL is set; `only` picks by key."""
    if not only or "sqlite" in only:
        path = workdir / sqlite_name
        yield Backend("sqlite", "SQLite (temp file)", f"sqlite+aiosqlite:///{path}", path)
    pg = os.environ.get(PG_URL_ENV)
    if pg and (not only or "postgresql" in only):
        check_local(pg)
        yield Backend("postgresql", "PostgreSQL", pg, None)
    elif not pg:
        print(f"({PG_URL_ENV} is unset: PostgreSQL skipped)")


async def reset_postgres(url: str) -> None:
    """An empty `public` schema (the bench's PostgreSQL database is a throwaway one)."""
    from sqlalchemy import text

    from app.db import create_engine

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
    finally:
        await engine.dispose()


async def fresh_schema(url: str, sqlite_file: Path | None = None) -> None:
    """An empty, migrated database: `sqlite_file` (and its WAL) deleted first, if given."""
    from app.migrations import upgrade

    if sqlite_file is not None:
        for suffix in ("", "-wal", "-shm"):
            sqlite_file.with_name(sqlite_file.name + suffix).unlink(missing_ok=True)
    if url.startswith("postgresql"):
        await reset_postgres(url)
    await asyncio.to_thread(upgrade, url)


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def server_env(database_url: str) -> dict[str, str]:
    """The environment of a bench server: fake callback credentials, no WeCom secret (so
    nothing is sent; were it, it would stay local), no setting of the caller's."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WECOM_", "DATABASE_URL", "ADMIN_TOKEN", "CAMPBOT_"))
    }
    pythonpath = [str(PROJECT_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    env.update(
        {
            "WECOM_CORP_ID": CORP_ID,
            "WECOM_TOKEN": TOKEN,
            "WECOM_ENCODING_AES_KEY": AES_KEY,
            "WECOM_API_BASE": f"http://{HOST}:9",
            "DATABASE_URL": database_url,
            "PYTHONPATH": os.pathsep.join(pythonpath),
            "PYTHONUNBUFFERED": "1",
            "NO_PROXY": "*",
        }
    )
    return env


def _uvicorn(app: str, port: int, profile_to: Path | None) -> list[str]:
    profiled = ["-m", "cProfile", "-o", str(profile_to)] if profile_to is not None else []
    serve = ["-m", "uvicorn", app, "--host", HOST, "--port", str(port), "--workers", "1"]
    # No access log: uvicorn builds its record's arguments for every request even below its
    # level, a cost CampBot's servers no longer pay (app.api.access_log), so a comparison app
    # must not pay it either.
    return [sys.executable, *profiled, *serve, "--log-level", "warning", "--no-access-log"]


RUN_CLI = "import sys; from app.cli import main; sys.argv[0] = 'campbot'; main()"


def campbot_serve(*extra: str, workers: int = 0) -> Callable[[int], list[str]]:
    """The command line of `campbot serve` on 127.0.0.1 and a port: what production runs
    (its logging included), for `Server(command=...)`. `workers`: that many `campbot worker`
    processes beside it, `nice` as the README starts them, for `CAMPBOT_HANDLERS=worker`; in
    the server's session, so that their CPU is the server's and its stop stops them."""

    def command(port: int) -> list[str]:
        serve = [sys.executable, "-c", RUN_CLI, "serve", "--host", HOST, "--port", str(port)]
        serve += extra
        if not workers:
            return serve
        worker = shlex.join(["nice", "-n", "10", sys.executable, "-c", RUN_CLI, "worker"])
        return ["sh", "-c", f"{worker} & " * workers + "exec " + shlex.join(serve)]

    return command


class Server:
    """`python -m uvicorn APP` on 127.0.0.1 in its own session; stopped with SIGINT."""

    def __init__(
        self,
        app: str,
        *,
        env: dict[str, str],
        workdir: Path,
        name: str,
        profile_to: Path | None = None,
        command: Callable[[int], list[str]] | None = None,
    ) -> None:
        """`command`: the command line for a port, instead of uvicorn serving `app`."""
        self.port = free_port()
        self.log_path = workdir / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command(self.port) if command else _uvicorn(app, self.port, profile_to),
            cwd=workdir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + SERVER_START_TIMEOUT_S
        url = f"http://{HOST}:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}:\n" + self.log_tail()
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url, timeout=2, trust_env=False).status_code == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(
            f"server not healthy within {SERVER_START_TIMEOUT_S:.0f} s:\n" + self.log_tail()
        )

    def cpu_seconds(self) -> float:
        """User+system CPU the server has used so far: its process and every process of its
        session still running (the workers it started), Linux /proc; 0 elsewhere."""
        return session_cpu_seconds(self.process.pid)

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def log_problems(self) -> Counter[str]:
        """Exceptions in the server log, and the project frames they went through, counted."""
        self._log.flush()
        found: Counter[str] = Counter()
        for line in _log_lines(self.log_path.read_text(errors="replace")):
            text = line.strip()
            if text.startswith("File ") and ("/app/" in text or "/bots/" in text):
                found["  at " + text.split("/work/main/")[-1][:120]] += 1
            elif text.startswith(("ERROR", "Exception in ASGI")) or (
                text.split(":", 1)[0].endswith(("Error", "Exception"))
                and " " not in text.split(":", 1)[0]
            ):
                found[text[:160]] += 1
        return found

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)  # its session's group: workers too
            try:
                self.process.wait(SERVER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()  # our own child, by its id
                self.process.wait(5)
        self._log.close()


def session_cpu_seconds(leader: int) -> float:
    """CPU (user+system) of the running processes of `leader`'s session, and what their
    reaped children used."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # ended meanwhile
        if int(fields[3]) == leader:  # the session id
            ticks += sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _log_lines(text: str) -> Iterator[str]:
    """The server log's lines, a structured (JSON) record unfolded into its message and the
    lines of its traceback, as a plain log would have them."""
    for line in text.splitlines():
        try:
            record = json.loads(line) if line.startswith("{") else None
        except ValueError:
            record = None
        if not isinstance(record, dict):
            yield line
            continue
        level = str(record.get("level", "")).upper()
        if level in ("ERROR", "CRITICAL"):
            yield f"{level}: {record.get('event', '')}"
        yield from str(record.get("exception", "")).splitlines()


def percentile(values: Sequence[float], p: float) -> float:
    """The nearest-rank p-th percentile (p in 0..100): a value that was measured, never
    one extrapolated past the largest (as `statistics.quantiles` does with few samples)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def machine_ticks() -> tuple[int, int]:
    """All CPUs' (busy, total) clock ticks so far (Linux; zeros elsewhere)."""
    try:
        with open("/proc/stat") as stat:
            ticks = [int(n) for n in stat.readline().split()[1:]]
    except OSError:
        return 0, 0
    idle = ticks[3] + ticks[4]  # idle + iowait
    return sum(ticks) - idle, sum(ticks)
