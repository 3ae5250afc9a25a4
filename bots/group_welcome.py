"""Group joins: sync the group's members and greet newcomers, batched."""

from __future__ import annotations

from bots.dispatch import Router

router = Router("group_welcome")
