"""Logs as production writes them: `uvicorn app.main:app` (the documented command and the
Docker entrypoint) and `campbot serve`, run as real processes on the first-run sandbox,
write CampBot's INFO lines and its warnings as JSON (stderr is not a terminal), each once."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from app.api.access_log import ACCESS_LOGGER, AccessLog, FastAPIWithAccessLog
from app.logging import QUIET_LOGGERS, UVICORN_LOGGERS, configure_logging
from app.migrations import upgrade
from tests.processes import CAMPBOT, HOST, Process, free_port, wait_ready

ROOT = Path(__file__).resolve().parents[1]
SEEDED = "first run: imported"
SANDBOX_WARNING = "no WECOM_* settings: running against the built-in WeCom sandbox"


def first_run_env(database_url: str) -> dict[str, str]:
    """No WeCom setting at all (the first run), this database, this checkout's code."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("WECOM_", "DATABASE_URL", "ADMIN_TOKEN", "CAMPBOT_", "PUBLIC_"))
        and key.lower() not in ("http_proxy", "https_proxy", "all_proxy")
    }
    env.update(
        DATABASE_URL=database_url,
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
        NO_PROXY="*",
        PYTHONUNBUFFERED="1",
    )
    return env


def served_log(args: Sequence[str], workdir: Path) -> list[str]:
    """Start `args` (which take --port), wait for /healthz, ask for one page, stop it
    (SIGINT, as a terminal's Ctrl-C or docker stop would), and answer its output lines."""
    database_url = f"sqlite+aiosqlite:///{workdir / 'campbot.db'}"
    upgrade(database_url)
    port = free_port()
    process = Process(
        [*args, "--host", HOST, "--port", str(port)],
        env=first_run_env(database_url),
        cwd=workdir,
        log=workdir / "server.log",
    )
    try:
        assert wait_ready(process, f"http://{HOST}:{port}/healthz"), process.log_tail()
    finally:
        process.stop(signal.SIGINT)
    return (workdir / "server.log").read_text(errors="replace").splitlines()


def records(lines: Sequence[str]) -> list[dict[str, Any]]:
    found = []
    for line in lines:
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def the_one(found: Sequence[dict[str, Any]], starts: str) -> dict[str, Any]:
    matching = [r for r in found if str(r.get("event", "")).startswith(starts)]
    assert len(matching) == 1, (starts, found)
    return matching[0]


def assert_structured(lines: Sequence[str]) -> None:
    found = records(lines)
    started = the_one(found, "CampBot started")
    assert started["level"] == "info"
    assert started["logger"] == "app.main"
    assert started["wecom"] == "sandbox"
    assert started["callback"] is True
    assert started["database"].startswith("sqlite+aiosqlite:///")
    seeded = the_one(found, SEEDED)
    assert seeded["level"] == "info"
    assert seeded["logger"] == "app.main"
    assert seeded["timestamp"].endswith("Z")
    warning = the_one(found, SANDBOX_WARNING)
    assert warning["level"] == "warning"
    # uvicorn's own lines go the same way: one format for the whole process.
    assert the_one(found, "Application startup complete")["logger"] == "uvicorn.error"
    # One access line per request, CampBot's, not uvicorn's as well.
    healthz = [r for r in found if "/healthz" in str(r.get("event", ""))]
    assert healthz
    assert {r["logger"] for r in healthz} == {ACCESS_LOGGER}
    # Nothing left unstructured but the CLI's own note to the terminal.
    plain = [line for line in lines if line.strip() and not line.startswith(("{", "note:"))]
    assert plain == []


def test_uvicorn_app_main_logs_campbot_info_and_warnings_as_json(tmp_path: Path) -> None:
    lines = served_log([sys.executable, "-m", "uvicorn", "app.main:app"], tmp_path)
    assert_structured(lines)


def test_campbot_serve_configures_logging_once(tmp_path: Path) -> None:
    lines = served_log([*CAMPBOT, "serve"], tmp_path)
    assert_structured(lines)  # the_one: no line twice, though both the CLI and the app set up


@pytest.fixture
def restored() -> Iterator[logging.Logger]:
    """The root logger; everything `configure_logging` changes (root, uvicorn's and the
    quieted loggers, the access filter) is put back afterwards, so no other test sees it.
    (A test empties the root's handlers itself: pytest adds its own after fixtures ran.)"""
    names = ("", *UVICORN_LOGGERS, *QUIET_LOGGERS)
    loggers = [logging.getLogger(name) for name in names]
    saved = [(lg.handlers[:], lg.level, lg.propagate, lg.filters[:]) for lg in loggers]
    try:
        yield logging.getLogger()
    finally:
        for lg, (handlers, level, propagate, filters) in zip(loggers, saved, strict=True):
            lg.handlers[:], lg.propagate, lg.filters[:] = handlers, propagate, filters
            lg.setLevel(level)


@pytest.mark.parametrize("already", [True, False])
def test_configure_logging_leaves_a_configured_root_alone(
    restored: logging.Logger, already: bool
) -> None:
    root = restored
    root.handlers[:] = [logging.NullHandler()] if already else []
    assert configure_logging() is (not already)
    assert configure_logging() is False  # a second call: nothing more
    assert len(root.handlers) == 1


def test_uvicorns_log_level_is_campbots_too(tmp_path: Path) -> None:
    """`--log-level warning` (as the benchmarks run it) quiets CampBot's INFO lines too."""
    lines = served_log(
        [sys.executable, "-m", "uvicorn", "app.main:app", "--log-level", "warning"], tmp_path
    )
    found = records(lines)
    assert the_one(found, SANDBOX_WARNING)["level"] == "warning"
    assert not [r for r in found if r["level"] == "info"]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
def test_lines_are_readable_on_a_terminal_json_elsewhere_and_apscheduler_ticks_quiet(
    monkeypatch: pytest.MonkeyPatch, restored: logging.Logger, terminal: bool
) -> None:
    stderr = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    restored.handlers[:] = []
    assert configure_logging(level="INFO") is True
    logging.getLogger("app.scheduler").info("推送已发出", extra={"firing": 7})
    # APScheduler's per-tick lines (its executors log every job run at INFO).
    logging.getLogger("apscheduler.executors.default").info('Running job "tick"')
    logging.getLogger("apscheduler.scheduler").warning("Execution of job skipped")
    lines = stderr.getvalue().splitlines()
    assert len(lines) == 2, lines
    assert not any("Running job" in line for line in lines)
    if terminal:
        assert not lines[0].startswith("{")
        for part in ("推送已发出", "firing=7", "app.scheduler"):
            assert part in lines[0]
    else:
        first, second = (json.loads(line) for line in lines)
        assert (first["event"], first["firing"], first["level"]) == ("推送已发出", 7, "info")
        assert (second["logger"], second["level"]) == ("apscheduler.scheduler", "warning")


async def _answer_with(scope: Scope, receive: Receive, send: Send) -> None:
    """An app answering with the status the request's `status` query names."""
    status = int(dict(parse_qsl(scope["query_string"].decode()))["status"])
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})


async def test_accepted_callbacks_leave_no_access_line_refusals_and_other_requests_do(
    monkeypatch: pytest.MonkeyPatch, restored: logging.Logger
) -> None:
    """An access line per accepted callback costs a busy evening's CPU and says what
    campbot_callbacks_total counts; a refusal, and every other request, keeps its line.
    uvicorn's own access log is off: it would be a second line, built for every callback."""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    restored.handlers[:] = []
    assert configure_logging(level="INFO") is True
    assert not logging.getLogger("uvicorn.access").hasHandlers()
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=AccessLog(_answer_with)), base_url="http://campbot"
    )
    signed = "/wecom/callback?msg_signature=ab&timestamp=1&nonce=n"
    async with client:
        for method, path, status in [
            ("POST", signed, 200),
            ("POST", signed, 403),
            ("GET", signed, 200),  # URL verification
            ("POST", "/admin/api/cohorts", 201),
            ("GET", "/h5/%E6%89%93%E5%8D%A1", 404),
        ]:
            response = await client.request(
                method, f"{path}{'&' if '?' in path else '?'}status={status}"
            )
            assert response.status_code == status
    found = [json.loads(line) for line in stderr.getvalue().splitlines()]
    assert not [r for r in found if r["logger"] == "uvicorn.access"]
    lines = [r["event"] for r in found if r["logger"] == ACCESS_LOGGER]
    assert len(lines) == 4, lines
    assert not any("POST /wecom/callback" in line and " 200" in line for line in lines)
    assert any("POST /wecom/callback" in line and '" 403' in line for line in lines)
    assert any(
        line.startswith('127.0.0.1:123 - "GET /wecom/callback?msg_signature=ab') for line in lines
    )
    assert any('"POST /admin/api/cohorts?status=201 HTTP/1.1" 201' in line for line in lines)
    # The path as the client sent it: percent-encoded, not decoded and quoted again.
    assert any("GET /h5/%E6%89%93%E5%8D%A1?status=404" in line for line in lines)


async def test_no_access_line_is_built_when_info_is_off(
    monkeypatch: pytest.MonkeyPatch, restored: logging.Logger
) -> None:
    """`--log-level warning` (the benchmarks') writes no access line at all."""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    restored.handlers[:] = []
    assert configure_logging(level="WARNING") is True
    transport = httpx.ASGITransport(app=AccessLog(_answer_with))
    async with httpx.AsyncClient(transport=transport, base_url="http://campbot") as client:
        assert (await client.get("/healthz?status=200")).status_code == 200
    assert stderr.getvalue() == ""


async def test_an_answer_of_the_frameworks_error_middleware_gets_its_access_line_too(
    monkeypatch: pytest.MonkeyPatch, restored: logging.Logger
) -> None:
    """A 500 is answered by the framework's outermost middleware, outside everything
    `add_middleware` adds: the access log wraps the whole stack, so the 500 has its line."""
    stderr = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stderr)
    restored.handlers[:] = []
    assert configure_logging(level="INFO") is True
    app = FastAPIWithAccessLog()

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://campbot") as client:
        assert (await client.get("/boom")).status_code == 500
    found = [json.loads(line) for line in stderr.getvalue().splitlines()]
    access = [r["event"] for r in found if r["logger"] == ACCESS_LOGGER]
    assert access == ['127.0.0.1:123 - "GET /boom HTTP/1.1" 500']
