"""What handlers get as `ctx.outbound`: the outbox's fast path.

Sends never call WeCom directly (ARCHITECTURE §1 rule 3): a handler writes an outbox row
and, when it cannot wait, pushes it through with `deliver_now`. The few reads a handler
makes (the welcome's student name) use `ctx.wecom`, outside the event's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.sender import Sender


@dataclass(frozen=True, slots=True)
class HandlerOutbound:
    sender: Sender

    async def deliver_now(self, row_id: int) -> str:
        return await self.sender.deliver_now(row_id)
