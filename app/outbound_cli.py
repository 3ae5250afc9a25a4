"""What `campbot send` and `campbot sender` do, outside any HTTP request.

They use the same settings and database as the server and may run beside it:
a row is sent by whichever sender claims it, exactly once.
"""

from __future__ import annotations

import asyncio
import signal
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select

from app.channels.deliver import ChannelDeliverer
from app.channels.messages import OutMessage
from app.channels.reach import Destination, enqueue_message
from app.clock import SystemClock
from app.db import create_engine, create_sessionmaker
from app.instances import Identity, running
from app.models import OutboxMessage, OutboxStatus
from app.runtime import wecom_client, wecom_http
from app.sender import Sender
from app.settings import Settings
from app.wecom.errors import HINTS

FINAL = frozenset({OutboxStatus.SENT, OutboxStatus.DEAD, OutboxStatus.CANCELLED})
POLL_S = 0.5


class NotConfigured(RuntimeError):
    """WECOM_CORP_ID / WECOM_SECRET are needed to send anything."""


@dataclass(frozen=True, slots=True)
class SendOutcome:
    key: str
    status: str
    errcode: int | None
    error: str | None
    msgid: str | None

    @property
    def hint(self) -> str:
        return HINTS.get(self.errcode or 0, "") if self.errcode else ""


@asynccontextmanager
async def _sender(settings: Settings, *, kind: str) -> AsyncIterator[Sender]:
    """A Sender registered as an instance of `kind` (app.instances) while the block runs."""
    engine = create_engine(settings.database_url)
    try:
        async with wecom_http(settings, None) as http:
            clock = SystemClock()
            sessions = create_sessionmaker(engine)
            client = wecom_client(settings, http=http, sessions=sessions, clock=clock)
            if client is None:
                raise NotConfigured("set WECOM_CORP_ID and WECOM_SECRET to send to WeCom")
            identity = Identity.of_this_process(kind)
            async with running(sessions=sessions, identity=identity, clock=clock):
                yield Sender(
                    sessions=sessions,
                    deliver=ChannelDeliverer(client),
                    clock=clock,
                    instance=identity.id,
                )
    finally:
        await engine.dispose()


async def send_one(
    settings: Settings, *, destination: Destination, message: OutMessage, wait: timedelta
) -> SendOutcome:
    """Enqueue one message and see it through: sent, dead, or still pending after `wait`."""
    key = f"cli:{uuid.uuid4().hex}"
    async with _sender(settings, kind="send") as sender:
        clock = SystemClock()
        async with sender.sessions.begin() as session:
            row_id = await enqueue_message(
                session=session, key=key, destination=destination, message=message, now=clock.now()
            )
        assert row_id is not None  # a fresh uuid key is never a duplicate
        deadline = clock.now() + wait
        while True:
            status = await sender.deliver_now(row_id)
            if status in FINAL or clock.now() >= deadline:
                break
            await asyncio.sleep(POLL_S)  # retrying, or another sender (the server) has it
        async with sender.sessions() as session:
            row = (
                await session.execute(select(OutboxMessage).where(OutboxMessage.id == row_id))
            ).scalar_one()
        return SendOutcome(key, row.status, row.last_errcode, row.last_error, row.wecom_msgid)


async def run_sender(settings: Settings) -> None:
    """The sender loop alone, until SIGINT or SIGTERM."""
    async with _sender(settings, kind="sender") as sender:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await sender.run_forever(stop)
