"""What handlers get as `ctx.outbound`: the outbox's fast path, plus the WeCom client for
the few reads a handler makes while it runs (the welcome's student name and channel tag).

Sends never use `wecom` directly (ARCHITECTURE §1 rule 3): a handler writes an outbox row
and, when it cannot wait, pushes it through with `deliver_now`. The client rides here only
until the dispatcher's `Context` carries it itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.outbox import Sender
from app.wecom.client import WeComClient


@dataclass(frozen=True, slots=True)
class HandlerOutbound:
    sender: Sender
    wecom: WeComClient

    async def deliver_now(self, row_id: int) -> str:
        return await self.sender.deliver_now(row_id)
