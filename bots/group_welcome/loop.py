"""The background loop of group joins: flagged groups re-synced and closed batches flushed
every FLUSH_EVERY_S, customer-group welcome templates kept in step every TEMPLATES_EVERY_S.

Started by the app's lifespan on every instance (a batch is flushed in one transaction
whose rows another instance skips, and outbox keys are unique, so instances never double).
"""

from __future__ import annotations

import asyncio
from functools import partial

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app.background import every
from app.clock import Clock
from app.wecom.client import WeComClient
from bots.group_welcome.service import flush_due, sync_flagged_groups
from bots.group_welcome.template_sync import sync_templates

FLUSH_EVERY_S = 2.0
TEMPLATES_EVERY_S = 60.0


async def group_welcome_round(
    *, sessions: async_sessionmaker[AsyncSession], wecom: WeComClient, clock: Clock
) -> None:
    await sync_flagged_groups(sessions=sessions, wecom=wecom, clock=clock)
    await flush_due(sessions=sessions, wecom=wecom, clock=clock)


async def run_group_welcome(
    stop: asyncio.Event,
    *,
    sessions: async_sessionmaker[AsyncSession],
    wecom: WeComClient,
    clock: Clock,
) -> None:
    """Run until `stop` is set (a failed pass is logged; the next one catches up)."""
    round_ = partial(group_welcome_round, sessions=sessions, wecom=wecom, clock=clock)
    templates = partial(sync_templates, sessions=sessions, wecom=wecom, clock=clock)
    await asyncio.gather(
        every(stop, FLUSH_EVERY_S, round_, name="group welcome"),
        every(stop, TEMPLATES_EVERY_S, templates, name="group welcome templates"),
    )
