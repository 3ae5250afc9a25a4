"""The 群SOP loop: tell staff about items as they fall due, remind, escalate."""

from __future__ import annotations

import asyncio
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.background import every
from app.capability import BackgroundLoop
from app.clock import Clock
from app.wecom.client import WeComClient
from bots.sop.service import sop_round

EVERY_S = 5.0  # items due together (the same minute) are told in one message


async def run_sop(
    stop: asyncio.Event,
    *,
    sessions: async_sessionmaker[AsyncSession],
    wecom: WeComClient,
    clock: Clock,
) -> None:
    await every(stop, EVERY_S, partial(sop_round, sessions=sessions, clock=clock), name="群SOP")


LOOPS = (BackgroundLoop("sop", run_sop),)
