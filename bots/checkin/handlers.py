"""打卡 by app 1:1 message from internal members."""

from __future__ import annotations

from bots.dispatch import Router

router = Router("checkin")
