"""The WeCom reads the welcome makes while its 20-second window runs: best effort, bounded.

A lookup that is slow or fails answers None and the welcome goes out without it (the
student is greeted as 同学, the channel tag is left off): nothing here may cost the window.
The lookups run as the welcome's prepare step, before the event's database transaction
opens (bots.dispatch), so they hold no connection: intake goes on meanwhile, and a token
refresh (which needs a connection, SQLite's only one) can finish within the bound.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime, timedelta

from app.bounded import bounded
from app.wecom.client import WeComClient

WINDOW = timedelta(seconds=20)  # a WelcomeCode works this long after the event (§2.2)
LOOKUP_TIMEOUT_S = 2.0
# Kept free at the end of the window for the commit and the send itself.
SEND_RESERVE = timedelta(seconds=5)


@dataclass(frozen=True, slots=True)
class Lookups:
    student_name: str | None = None
    channel_tag_id: str | None = None


def lookup_budget(*, created_at: datetime | None, now: datetime) -> float:
    """Seconds the lookups may take: LOOKUP_TIMEOUT_S, less when the window is closing."""
    if created_at is None:
        return LOOKUP_TIMEOUT_S
    left = (created_at + WINDOW - SEND_RESERVE - now).total_seconds()
    return max(0.0, min(LOOKUP_TIMEOUT_S, left))


async def student_name(wecom: WeComClient, *, external_userid: str, seconds: float) -> str | None:
    """The contact's WeChat name from externalcontact/get."""
    contact = await bounded(
        lambda: wecom.get_external_contact(external_userid=external_userid),
        seconds=seconds,
        what=f"externalcontact/get {external_userid}",
    )
    name = contact.external_contact.name.strip() if contact is not None else ""
    return name or None


async def tag_id_named(wecom: WeComClient, *, name: str, seconds: float) -> str | None:
    """The id of the live corp tag called `name` (in any tag group), if there is one."""
    groups = await bounded(
        lambda: wecom.get_corp_tag_list(), seconds=seconds, what="get_corp_tag_list"
    )
    for group in groups or []:
        if group.deleted:
            continue
        for tag in group.tag:
            if tag.name == name and not tag.deleted:
                return tag.id
    return None


async def look_up(
    wecom: WeComClient | None,
    *,
    external_userid: str,
    known_name: str | None,
    tag_name: str,
    seconds: float,
) -> Lookups:
    """Both lookups at once under one bound; a name CampBot already knows is not fetched."""
    if wecom is None:
        return Lookups(known_name)

    async def name() -> str | None:
        if known_name:
            return known_name
        return await student_name(wecom, external_userid=external_userid, seconds=seconds)

    async def tag() -> str | None:
        if not tag_name:
            return None
        return await tag_id_named(wecom, name=tag_name, seconds=seconds)

    found_name, found_tag = await asyncio.gather(name(), tag())
    return Lookups(found_name, found_tag)
