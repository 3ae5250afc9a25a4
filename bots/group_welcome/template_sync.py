"""Customer groups: WeCom greets their newcomers itself, with a group welcome template
(入群欢迎语素材), so CampBot keeps one template per cohort in step with the cohort's
`group_welcome` script, rendered with `newcomer_names = ["%NICKNAME%"]` (WeCom fills in
each newcomer's nickname).

`sync_templates` compares what each cohort's script renders to now with what WeCom was
last given (a hash in `group_welcome_templates`): a cohort with customer groups and no
template gets `group_welcome_template/add` (the template id is stored), a changed script
or cohort gets `.../edit`, an unchanged one nothing. WeCom is called between transactions.
It runs in the background loop (bots.group_welcome.loop) and may be called right after
an operator saves the script.

Every instance runs that loop, so a pass first takes the lease SYNC_LEASE (`app.leases`):
one instance syncs at a time, and the next reads what the last one stored, so a cohort's
template is added once. A pass renews it before each WeCom call; a process killed mid-pass
holds it until it expires (LEASE_TTL). Only an `add` whose answer was lost with the process
can still leave WeCom a template CampBot does not know of.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from app import leases
from app.admin.models import Cohort, CohortGroup
from app.clock import Clock
from app.db import dialect_insert, session_scope
from app.models import Group, GroupChannel, GroupStatus
from app.wecom.client import WeComClient
from app.wecom.errors import WeComAPIError, WeComError
from bots.group_welcome.greeting import cohort_context, cohort_script
from bots.group_welcome.models import GroupWelcomeTemplate
from scripts_library.errors import RenderError
from scripts_library.models import MsgType
from scripts_library.render import render

logger = logging.getLogger(__name__)

NICKNAME = "%NICKNAME%"
SYNC_LEASE = "group_welcome_templates"
# Longer than one WeCom call can take (10 s), renewed before each.
LEASE_TTL = timedelta(minutes=2)
THIS_PROCESS = uuid.uuid4().hex  # the lease's holder: this process's loop
TEXT_MAX_BYTES = 3000  # group_welcome_template text.content
TEMPLATE_GONE = 40058  # edit of a template deleted in WeCom: add a new one


@dataclass(frozen=True, slots=True)
class Wanted:
    cohort_id: int
    script_key: str
    text: str
    template_id: str | None  # None: WeCom has none for this cohort yet
    synced_sha256: str | None

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()


async def sync_templates(
    *,
    sessions: async_sessionmaker[AsyncSession],
    wecom: WeComClient,
    clock: Clock,
    holder: str = THIS_PROCESS,
) -> int:
    """Bring every cohort's template up to date; how many were added or edited (0 while
    another instance, or `holder`, syncs)."""
    if not await _lease(sessions, clock, holder):
        return 0
    try:
        return await _sync(sessions, wecom, clock, holder)
    finally:
        async with session_scope(sessions) as session:
            await leases.release(session=session, name=SYNC_LEASE, holder=holder)


async def _lease(sessions: async_sessionmaker[AsyncSession], clock: Clock, holder: str) -> bool:
    async with session_scope(sessions) as session:
        return await leases.acquire(
            session=session,
            name=SYNC_LEASE,
            holder=holder,
            now=clock.now(),
            ttl=LEASE_TTL,
            heartbeat=False,
        )


async def _sync(
    sessions: async_sessionmaker[AsyncSession], wecom: WeComClient, clock: Clock, holder: str
) -> int:
    async with sessions() as session:
        wanted = await _wanted(session)
    changed = 0
    for item in wanted:
        if item.sha256 == item.synced_sha256:
            continue
        if not await _lease(sessions, clock, holder):
            break  # expired and taken over (a very slow pass): the other one goes on
        template_id = await _push(wecom, item)
        if template_id is None:
            continue  # logged; the next pass tries again
        async with session_scope(sessions) as session:
            await _remember(session, item, template_id=template_id, now=clock.now())
        changed += 1
    return changed


async def _wanted(session: AsyncSession) -> list[Wanted]:
    cohorts = (
        await session.execute(
            select(Cohort)
            .join(CohortGroup, CohortGroup.cohort_id == Cohort.id)
            .join(Group, Group.id == CohortGroup.group_id)
            .where(Group.channel == GroupChannel.CUSTOMER, Group.status == GroupStatus.ACTIVE)
            .distinct()
            .order_by(Cohort.id)
        )
    ).scalars()
    synced = {
        row.cohort_id: row
        for row in (await session.execute(select(GroupWelcomeTemplate))).scalars()
    }
    found: list[Wanted] = []
    for cohort in cohorts:
        text = await _template_text(session, cohort)
        if text is None:
            continue
        script_key, content = text
        row = synced.get(cohort.id)
        found.append(
            Wanted(
                cohort_id=cohort.id,
                script_key=script_key,
                text=content,
                template_id=row.template_id if row else None,
                synced_sha256=row.content_sha256 if row else None,
            )
        )
    return found


async def _template_text(session: AsyncSession, cohort: Cohort) -> tuple[str, str] | None:
    """(script key, the template's text) for the cohort; None (logged) when there is none."""
    script = await cohort_script(session, cohort)
    if script is None or script.msgtype != MsgType.TEXT:
        logger.warning("cohort %s: no text group_welcome script for the template", cohort.id)
        return None
    context = replace(cohort_context(cohort, group_name=None), newcomer_names=(NICKNAME,))
    try:
        content = render(script, context).content
    except RenderError as exc:
        logger.warning("cohort %s: %s does not render: %s", cohort.id, script.key, exc)
        return None
    if len(content.encode()) > TEXT_MAX_BYTES:
        logger.warning("cohort %s: %s is over %d bytes", cohort.id, script.key, TEXT_MAX_BYTES)
        return None
    return script.key, content


async def _push(wecom: WeComClient, item: Wanted) -> str | None:
    """Add or edit the template in WeCom; its id, or None when WeCom refused (logged)."""
    template = {"text": {"content": item.text}}
    try:
        if item.template_id is not None:
            try:
                await wecom.edit_group_welcome_template(
                    template_id=item.template_id, template=template
                )
                return item.template_id
            except WeComAPIError as exc:
                if exc.errcode != TEMPLATE_GONE:
                    raise
        # notify: WeCom prompts the members to use it in their customer groups.
        return await wecom.add_group_welcome_template(template=template, notify=True)
    except WeComError as exc:
        logger.warning("group welcome template of cohort %s: %s", item.cohort_id, exc)
        return None


async def _remember(
    session: AsyncSession, item: Wanted, *, template_id: str, now: datetime
) -> None:
    values = {
        "template_id": template_id,
        "script_key": item.script_key,
        "content_sha256": item.sha256,
        "synced_at": now,
    }
    insert = dialect_insert(session)
    await session.execute(
        insert(GroupWelcomeTemplate)
        .values(cohort_id=item.cohort_id, **values)
        .on_conflict_do_update(index_elements=["cohort_id"], set_=values)
    )
