"""CampBot commands as real processes, for the tests that need a process boundary.

A sender process can be killed mid-send (`kill -9`), two of them can compete for the
same rows, and the CLI's exit codes are the real ones. Everything listens on 127.0.0.1,
each child writes to a log file (a full pipe would block it), and every wait has a
deadline whose failure message includes the child's log.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import make_url, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.db import create_engine, create_sessionmaker
from app.migrations import upgrade
from app.wecom.crypto import CallbackCrypto
from app.wecom_sandbox import callback_xml
from app.wecom_sandbox.callbacks import CallbackBuilder, SignedCallback
from tests.support import AES_KEY, TOKEN

HOST = "127.0.0.1"
# Obviously fake credentials; the sandbox is started with the same ones.
CORP_ID = "wwprocesstest0001"
AGENT_ID = 1000002
SECRET = "process-test-secret"
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# The fake keeps nothing worth a graceful stop; its answers on hold are not waited for.
SANDBOX_GRACE_S = 1.0
POLL_S = 0.02
# `campbot` of this interpreter, whatever is (or is not) on PATH.
CAMPBOT = (
    sys.executable,
    "-c",
    "import sys; from app.cli import main; sys.argv[0] = 'campbot'; main()",
)
# The app as compose.yaml runs it, for `ServerProcess.start`'s `command`.
UVICORN = (sys.executable, "-m", "uvicorn", "app.main:app")
# What a `campbot serve` logs when it becomes the scheduler's leader.
LEADS = "this instance leads the scheduler"


async def migrated_from_empty(url: str) -> str:
    """`url`'s database migrated as `campbot migrate` does; PostgreSQL's schema is emptied
    first (SQLite's file is new per test)."""
    if make_url(url).get_backend_name() == "postgresql":
        engine = create_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text("DROP SCHEMA public CASCADE"))
                await conn.execute(text("CREATE SCHEMA public"))
        finally:
            await engine.dispose()
    await asyncio.to_thread(upgrade, url)
    return url


@contextlib.asynccontextmanager
async def database(url: str) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    """Sessions on the database the child processes use (an engine of this process's own)."""
    engine = create_engine(url)
    try:
        yield create_sessionmaker(engine)
    finally:
        await engine.dispose()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def campbot_env(*, database_url: str, api_base: str | None = None) -> dict[str, str]:
    """The environment of a child `campbot`: this corp, this database, nothing inherited
    that would change its settings, and no proxy between it and 127.0.0.1."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WECOM_", "DATABASE_URL", "ADMIN_TOKEN", "CAMPBOT_"))
        and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        WECOM_CORP_ID=CORP_ID,
        WECOM_AGENT_ID=str(AGENT_ID),
        WECOM_SECRET=SECRET,
        DATABASE_URL=database_url,
        NO_PROXY="*",
        PYTHONUNBUFFERED="1",
    )
    if api_base is not None:
        env["WECOM_API_BASE"] = api_base
    return env


class Process:
    """A child process whose output goes to `log`; stopped by its pid only."""

    def __init__(self, args: Sequence[str], *, env: dict[str, str], cwd: Path, log: Path) -> None:
        self.log_path = log
        self._log = log.open("ab")
        self.popen = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        if not self._log.closed:
            self._log.flush()
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def kill(self) -> int:
        """SIGKILL: no handler, no cleanup, nothing flushed (a crash or `kill -9`)."""
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        return self._reap(STOP_TIMEOUT_S)

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = STOP_TIMEOUT_S) -> int:
        """Ask it to stop with `sig`; SIGKILL it if it has not exited within `timeout`."""
        if self.alive():
            self.popen.send_signal(sig)
            try:
                return self._reap(timeout)
            except subprocess.TimeoutExpired:
                self.popen.send_signal(signal.SIGKILL)
        return self._reap(STOP_TIMEOUT_S)

    def _reap(self, timeout: float) -> int:
        code = self.popen.wait(timeout)
        self._log.close()
        return code


def wait_ready(process: Process, url: str, *, within: float = START_TIMEOUT_S) -> bool:
    """Poll GET `url` until it answers 200 (True); False at the deadline or once `process`
    has exited."""
    deadline = time.monotonic() + within
    with httpx.Client(trust_env=False, timeout=2) as http:
        while time.monotonic() < deadline and process.alive():
            try:
                if http.get(url).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(POLL_S)
    return False


def start_campbot(args: Sequence[str], *, env: dict[str, str], cwd: Path, name: str) -> Process:
    return Process([*CAMPBOT, *args], env=env, cwd=cwd, log=cwd / f"{name}.log")


class SandboxServer:
    """`campbot sandbox` on a free port, ready once /sandbox/state answers."""

    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.base_url = f"http://{HOST}:{port}"

    @classmethod
    def start(cls, workdir: Path, *, robots: Iterable[str] = ()) -> SandboxServer:
        args = ["sandbox", "--host", HOST]
        for key in robots:
            args += ["--robot", key]
        env = campbot_env(database_url=f"sqlite+aiosqlite:///{workdir / 'unused.db'}")
        # A port found free may be taken before uvicorn binds it: try another.
        logs = []
        for attempt in range(3):
            port = free_port()
            process = start_campbot(
                [*args, "--port", str(port)], env=env, cwd=workdir, name=f"sandbox-{attempt}"
            )
            server = cls(process, port)
            if wait_ready(process, f"{server.base_url}/sandbox/state"):
                return server
            server.stop()
            logs.append(process.log_tail())
        raise RuntimeError("the sandbox did not start:\n" + "\n".join(logs))

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, trust_env=False, timeout=10)

    def stop(self) -> int:
        # uvicorn waits for requests still being answered (a delay fault may hold one for
        # seconds); a second SIGINT is its "force quit", and SIGKILL is the last resort.
        if self.process.alive():
            self.process.popen.send_signal(signal.SIGINT)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.popen.wait(SANDBOX_GRACE_S)
        return self.process.stop(signal.SIGINT, timeout=STOP_TIMEOUT_S)


class ServerProcess:
    """`campbot serve` (or `command`, given --host and --port) on `port`, ready once /healthz
    answers 200 (its database is up); its log is `workdir/{name}.log`."""

    def __init__(self, process: Process, port: int) -> None:
        self.process = process
        self.port = port
        self.base_url = f"http://{HOST}:{port}"

    @classmethod
    def start(
        cls,
        workdir: Path,
        *,
        env: dict[str, str],
        port: int,
        name: str,
        command: Sequence[str] = (*CAMPBOT, "serve"),
    ) -> ServerProcess:
        args = [*command, "--host", HOST, "--port", str(port)]
        process = Process(args, env=env, cwd=workdir, log=workdir / f"{name}.log")
        server = cls(process, port)
        if wait_ready(server.process, f"{server.base_url}/healthz"):
            return server
        server.process.stop()
        raise RuntimeError(f"server {name!r} did not start:\n{server.process.log_tail()}")


async def wait_until(
    check: Callable[[], Awaitable[bool]],
    *,
    what: str,
    within: float = START_TIMEOUT_S,
    watch: Sequence[Process] = (),
) -> None:
    """Poll `check` until true; fail at the deadline, or at once if a watched child exits."""
    deadline = time.monotonic() + within
    while not await check():
        for process in watch:
            if not process.alive():
                raise AssertionError(
                    f"waiting for {what}: pid {process.pid} exited with "
                    f"{process.popen.returncode}:\n{process.log_tail()}"
                )
        if time.monotonic() > deadline:
            logs = "\n".join(p.log_tail() for p in watch)
            raise AssertionError(f"timed out after {within:.0f} s waiting for {what}\n{logs}")
        await asyncio.sleep(POLL_S)


def leaders(log: Path) -> list[tuple[int, datetime]]:
    """(pid, when) of each time a process writing `log` said it leads the scheduler."""
    found = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("{") and LEADS in line:
            record = json.loads(line)
            found.append((int(record["pid"]), datetime.fromisoformat(record["timestamp"])))
    return found


async def deliveries(fake: httpx.AsyncClient) -> list[dict[str, Any]]:
    """What reached the sandbox (`fake`), in order."""
    response = (await fake.get("/sandbox/messages")).raise_for_status()
    return list(response.json()["deliveries"])


def callback_builder(*, agent_id: str = "") -> CallbackBuilder:
    """Signs callbacks as WeCom does for the corp the child processes are started with
    (`agent_id`: the envelope's AgentID, which a contact event leaves empty)."""
    return CallbackBuilder(
        CallbackCrypto(token=TOKEN, encoding_aes_key=AES_KEY, receive_id=CORP_ID),
        agent_id=agent_id,
    )


async def contact_added(
    fake: httpx.AsyncClient,
    builder: CallbackBuilder,
    *,
    external_userid: str,
    name: str,
    staff: str,
    state: str,
) -> tuple[SignedCallback, str]:
    """WeCom's side of a new contact: the sandbox (`fake`) learns the student and issues a
    welcome code; the signed `add_external_contact` callback carrying it, and the code."""
    contact = {"external_userid": external_userid, "name": name}
    contact |= {"follow_userid": staff, "state": state}
    (await fake.post("/sandbox/external-contacts", json=contact)).raise_for_status()
    issued = await fake.post(
        "/sandbox/welcome-codes", json={"userid": staff, "external_userid": external_userid}
    )
    code = str(issued.raise_for_status().json()["welcome_code"])
    at = datetime.now(UTC)
    plaintext = callback_xml.external_contact_added(
        CORP_ID,
        userid=staff,
        external_userid=external_userid,
        state=state,
        welcome_code=code,
        at=at,
    )
    return builder.post(plaintext, at=at), code
