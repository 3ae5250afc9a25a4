"""`CAMPBOT_HANDLERS=worker`: the server records and answers at once, `campbot worker`
processes run each recorded event exactly once — several workers included — and what an
intake server or a worker left behind is still run. A member's question is then answered
by an app message, never in the callback's answer."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from typer.testing import CliRunner

from app.capability import Capability
from app.clock import ManualClock
from app.db import create_engine, create_sessionmaker
from app.inbox_taker import (
    CATCH_UP_S,
    GRACE,
    INTAKE_KIND,
    RETRY_S,
    WORKER_KIND,
    Cursor,
    run_taker,
    take,
)
from app.main import CAPABILITIES
from app.models import Instance
from app.settings import HandlersMode, Settings, get_settings
from app.wecom_sandbox.callbacks import CallbackBuilder
from app.wecom_sandbox.sender import CallbackSender
from app.wecom_sandbox.server import sandbox_transport
from app.wecom_sandbox.state import SandboxState
from app.worker import run_worker
from bots.dispatch import Dispatcher, Router
from tests.admin.conftest import ADMIN_TOKEN, Admin
from tests.processes import free_port
from tests.support import (
    AES_KEY,
    AGENT_ID,
    APP_SECRET,
    CORP_ID,
    T0,
    TOKEN,
    AppHarness,
    Recorder,
    inbox_rows,
    running_app,
    text_message,
)

Sessions = async_sessionmaker[AsyncSession]
WITHIN_S = 10.0


def _intake(settings: Settings) -> Settings:
    return settings.model_copy(update={"campbot_handlers": HandlersMode.WORKER})


@dataclass
class Stage:
    """One database and clock for intake servers and workers; `recorder` runs in both."""

    settings: Settings
    clock: ManualClock
    engine: AsyncEngine
    sessions: Sessions
    recorder: Recorder = field(default_factory=Recorder)

    def intake(self, **overrides: Any) -> AbstractAsyncContextManager[AppHarness]:
        """A server with CAMPBOT_HANDLERS=worker (its routers: the recorder's)."""
        given: dict[str, Any] = {"routers": [self.recorder.router]} | overrides
        return running_app(
            settings=_intake(self.settings), clock=self.clock, engine=self.engine, **given
        )

    @asynccontextmanager
    async def worker(
        self,
        routers: tuple[Router, ...] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        metrics_at: tuple[str, int] | None = None,
    ) -> AsyncIterator[None]:
        """`run_worker` with `routers` (the recorder's), until the block ends."""
        stop = asyncio.Event()
        routers = routers or (self.recorder.router,)
        running = asyncio.ensure_future(
            run_worker(
                stop,
                settings=self.settings,
                capabilities=(Capability(name="under_test", event_routers=routers),),
                clock=self.clock,
                engine=self.engine,
                wecom_transport=transport or httpx.MockTransport(lambda _: httpx.Response(503)),
                heartbeat=False,
                metrics_at=metrics_at,
            )
        )
        try:
            yield
        finally:
            stop.set()
            await running

    async def all_handled(self) -> bool:
        return all(row.status == "handled" for row in await inbox_rows(self.sessions))

    async def instance_kinds(self) -> dict[str, str]:
        async with self.sessions() as session:
            rows = await session.execute(select(Instance.id, Instance.kind))
            return {row.id: row.kind for row in rows}


@pytest.fixture
def stage(
    settings: Settings, clock: ManualClock, engine: AsyncEngine, sessions: Sessions
) -> Stage:
    return Stage(settings, clock, engine, sessions)


async def _eventually(check: Callable[[], Awaitable[bool]]) -> None:
    deadline = time.monotonic() + WITHIN_S
    while not await check():
        assert time.monotonic() < deadline, "not within the time"
        await asyncio.sleep(0.02)


async def test_intake_records_and_answers_and_runs_nothing(
    stage: Stage, wecom: CallbackBuilder
) -> None:
    async with stage.intake() as intake:
        answer = await intake.deliver(wecom.post(text_message("8001"), at=T0))
        await asyncio.sleep(0.1)  # a run here would have started by now
        kinds = await stage.instance_kinds()
    assert (answer.status_code, answer.text) == (200, "success")
    assert stage.recorder.seen == []
    [row] = await inbox_rows(stage.sessions)
    assert (row.status, row.attempts) == ("received", 1)
    assert row.instance_id is not None
    assert kinds[row.instance_id] == INTAKE_KIND


async def test_workers_run_each_recorded_event_once(stage: Stage, wecom: CallbackBuilder) -> None:
    async with stage.intake() as intake:
        first = [text_message(str(9000 + n)) for n in range(60)]
        await _deliver_all(intake, wecom, first)
        async with stage.worker(), stage.worker():
            # Events arriving while the workers look are taken too.
            await _deliver_all(intake, wecom, [text_message(str(9100 + n)) for n in range(60)])
            await _eventually(stage.all_handled)
            kinds = await stage.instance_kinds()
    rows = await inbox_rows(stage.sessions)
    assert len(rows) == 120
    assert Counter(stage.recorder.seen) == Counter(row.dedupe_key for row in rows)  # once each
    assert {row.attempts for row in rows} == {1}  # the attempt intake counted
    assert {kinds[row.instance_id] for row in rows if row.instance_id} == {WORKER_KIND}


async def test_a_take_starts_at_the_newest_taken_and_catches_up_on_late_rows_each_second(
    stage: Stage, wecom: CallbackBuilder
) -> None:
    async def take_now(at: float) -> list[str]:
        async with stage.sessions.begin() as session:
            taken = await take(session=session, me="w", limit=10, since=cursor.start(at))
        if taken:
            cursor.advance(taken)
        return [attempt.dedupe_key for attempt in taken]

    cursor = Cursor()
    async with stage.intake() as intake:
        stage.clock.set(T0 + timedelta(seconds=10))
        await intake.deliver(wecom.post(text_message("8301"), at=T0))
        assert await take_now(0.0) == ["msg:8301"]  # the first take reads from the oldest
        # Recorded now, dated before the newest taken (beyond GRACE): a commit that came late.
        stage.clock.set(T0 + timedelta(seconds=10) - GRACE * 2)
        await intake.deliver(wecom.post(text_message("8302"), at=T0))
        stage.clock.set(T0 + timedelta(seconds=10) - GRACE / 2)
        await intake.deliver(wecom.post(text_message("8303"), at=T0))
        assert await take_now(0.5) == ["msg:8303"]  # within GRACE of the newest: at once
        assert await take_now(CATCH_UP_S) == ["msg:8302"]  # the catch-up, a second on


async def _deliver_all(harness: AppHarness, wecom: CallbackBuilder, messages: list[str]) -> None:
    answers = await asyncio.gather(*(harness.deliver(wecom.post(m, at=T0)) for m in messages))
    assert {(a.status_code, a.text) for a in answers} == {(200, "success")}


async def test_what_a_stopped_intake_server_left_is_run_by_a_worker(
    stage: Stage, wecom: CallbackBuilder
) -> None:
    async with stage.intake() as intake:
        await intake.deliver(wecom.post(text_message("8101"), at=T0))
    # The intake server is gone (unregistered): its row is no intake's row any more.
    async with stage.worker():
        await _eventually(stage.all_handled)
    assert stage.recorder.seen == ["msg:8101"]


async def test_a_question_gets_its_answer_as_an_app_message(stage: Stage) -> None:
    stage.settings = stage.settings.model_copy(update={"admin_token": SecretStr(ADMIN_TOKEN)})
    sandbox = SandboxState(corp_id=CORP_ID, apps={AGENT_ID: APP_SECRET}, clock=stage.clock)
    sandbox.add_user("lisi", "成员lisi")
    routers = tuple(r for c in CAPABILITIES for r in c.event_routers)
    transport = sandbox_transport(sandbox)
    async with stage.intake(routers=routers, wecom_transport=transport, sender=False) as intake:
        await Admin(intake).created(
            "/qa-rules", {"mode": "contains", "patterns": ["退款"], "reply": "找班主任"}
        )
        members = CallbackSender(
            sandbox, intake.client, token=TOKEN, encoding_aes_key=AES_KEY, agent_id=AGENT_ID
        )
        async with stage.worker(routers, transport):
            sent = await members.text_from_member("lisi", "怎么退款")
            await _eventually(stage.all_handled)
            await _eventually(lambda: _delivered(sandbox))
    assert sent.response.text == "success"
    assert sent.passive_reply is None
    [message] = sandbox.delivered("message")
    assert message.target == "lisi"


async def _delivered(sandbox: SandboxState) -> bool:
    return bool(sandbox.delivered("message"))


async def test_a_worker_serves_its_handler_metrics_on_its_own_port_while_it_runs(
    stage: Stage, wecom: CallbackBuilder
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    labels = {"handler": HANDLER, "outcome": "ok"}
    before = REGISTRY.get_sample_value(RUNS, labels) or 0.0  # counted by earlier tests too
    async with stage.intake() as intake:
        await intake.deliver(wecom.post(text_message("8201"), at=T0))
        async with stage.worker(metrics_at=("127.0.0.1", port)):
            await _eventually(stage.all_handled)
            async with httpx.AsyncClient(trust_env=False) as http:
                scraped = (await http.get(url)).text
    ran = f'{RUNS}{{handler="{HANDLER}",outcome="ok"}} {before + 1}'
    assert ran in scraped.splitlines()
    with pytest.raises(httpx.ConnectError):  # stopped with the worker
        await httpx.AsyncClient(trust_env=False).get(url)


RUNS = "campbot_handler_runs_total"
HANDLER = "tests.support.Recorder.handle"


async def test_a_failing_take_is_retried_each_second_not_in_a_tight_loop(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = create_engine(f"sqlite+aiosqlite:///{tmp_path}/missing/dir/x.db")
    stop = asyncio.Event()
    sessions = create_sessionmaker(nowhere)
    processor = Dispatcher(routers=(), sessions=sessions, settings=settings, clock=ManualClock(T0))
    with caplog.at_level(logging.ERROR, logger="app.inbox_taker"):
        taking = asyncio.ensure_future(
            run_taker(stop, sessions=sessions, processor=processor, me="w")
        )
        await asyncio.sleep(RETRY_S * 1.5)
        stop.set()
        await asyncio.wait_for(taking, 2)
    await nowhere.dispose()
    failures = [r for r in caplog.records if "taking intake's rows failed" in r.getMessage()]
    assert len(failures) == 2  # at once, then after RETRY_S


def test_the_worker_command_needs_wecom_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from app.cli import cli

    for name in ("WECOM_CORP_ID", "WECOM_SECRET", "WECOM_TOKEN", "WECOM_ENCODING_AES_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path}/worker.db")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli, ["worker"])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert "a worker needs the WECOM_* settings" in result.output
