"""Answering one question: who asks (their cohorts and groups decide which rules apply),
which rules match, cooldowns, and the reply: passive (in the callback's answer) when the
callback still waits, else an app message in the outbox.

A passive reply is recorded as a `sent` outbox row of channel `passive_reply` under the key
the app message would have had (`qa:{event}:{rule}`), in the same transaction: operators
see every answer at `/admin/api/outbox`, and the unique key makes "both" impossible in the
database too. If the callback stops waiting before that transaction commits, the dispatcher
turns the row into that app message (`passive_to_app_message`) and sends it."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from sqlalchemy import ScalarSelect, bindparam, literal, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from app.admin.h5_tokens import member_url
from app.admin.models import Cohort, CohortMember
from app.channels.messages import OutMessage
from app.channels.reach import Channel, Destination, enqueue_message, message_payload
from app.db import dialect_insert
from app.models import GroupMembership, Member, OutboxMessage, OutboxStatus
from app.outbox import MAX_ATTEMPTS, rate_key
from app.wecom.errors import UndeliverableError
from bots.dispatch import PassiveFallback
from bots.qa.matcher import RuleSpec
from bots.qa.matching import NO_VERSION, VERSION_ROW, VersionKey, match
from bots.qa.models import QaCooldown, QaRule, QaRulesVersion
from bots.qa.regex import MAX_TEXT
from bots.qa.service import count_hit, record_unanswered
from scripts_library.errors import RenderError, ScriptNotFoundError
from scripts_library.render import render
from scripts_library.service import get_script
from scripts_library.variables import RenderContext

logger = logging.getLogger(__name__)
PASSIVE_CHANNEL = "passive_reply"


class PassiveOffer(Protocol):
    """Offers a reply text to the waiting callback (`Context.passive_reply`); True if it is
    the callback's to carry, or `fallback`'s to send should the callback stop waiting."""

    def __call__(self, text: str, *, fallback: PassiveFallback) -> bool: ...


@dataclass(frozen=True, slots=True)
class Asker:
    """A member writing to the app (`member_id` None: CampBot does not know them), and the
    scopes their question is answered in: their cohorts and groups. Those are read only when
    something needs them (`with_scopes`): most questions match no scoped rule."""

    userid: str
    member_id: int | None = None
    name: str | None = None
    cohort_ids: frozenset[int] = frozenset()
    group_ids: frozenset[int] = frozenset()
    scopes_read: bool = False

    @property
    def scoped(self) -> bool:
        """Whether `cohort_ids` and `group_ids` are the asker's (a stranger has none)."""
        return self.member_id is None or self.scopes_read

    def allows(self, rule: RuleSpec) -> bool:
        assert self.scoped, "the asker's scopes are not read yet (with_scopes)"
        if rule.cohort_id is not None:
            return rule.cohort_id in self.cohort_ids
        if rule.group_id is not None:
            return rule.group_id in self.group_ids
        return True


def _of_version(column: InstrumentedAttribute[Any]) -> ScalarSelect[Any]:
    return select(column).where(QaRulesVersion.id == VERSION_ROW).scalar_subquery()


def _of_member(column: InstrumentedAttribute[Any]) -> ScalarSelect[Any]:
    return select(column).where(Member.userid == bindparam("userid")).scalar_subquery()


# Built once: a question's statements are the hot path of a busy evening. The rules' version
# and who asks are one statement (scalar subqueries: neither row need exist).
_LOOKUP = select(
    _of_version(QaRulesVersion.epoch).label("epoch"),
    _of_version(QaRulesVersion.version).label("version"),
    _of_member(Member.id).label("member_id"),
    _of_member(Member.name).label("name"),
)
_SCOPES = union_all(
    select(literal("cohort"), CohortMember.cohort_id).where(
        CohortMember.member_id == bindparam("member_id")
    ),
    select(literal("group"), GroupMembership.group_id).where(
        GroupMembership.member_id == bindparam("member_id"), GroupMembership.left_at.is_(None)
    ),
)


async def lookup(*, session: AsyncSession, userid: str) -> tuple[VersionKey, Asker]:
    """The rules' version (for `matching.match`) and who asks, their scopes not yet read."""
    row = (await session.execute(_LOOKUP, {"userid": userid})).one()
    version = (row.epoch, row.version) if row.epoch is not None else NO_VERSION
    return version, Asker(userid, row.member_id, row.name)


async def with_scopes(*, session: AsyncSession, who: Asker) -> Asker:
    """`who` with their cohorts and the groups they are in (read once, for a member)."""
    if who.scoped:
        return who
    scopes = (await session.execute(_SCOPES, {"member_id": who.member_id})).all()
    cohorts = frozenset(n for kind, n in scopes if kind == "cohort")
    groups = frozenset(n for kind, n in scopes if kind == "group")
    return replace(who, cohort_ids=cohorts, group_ids=groups, scopes_read=True)


def _scoped(rule: RuleSpec) -> bool:
    return rule.cohort_id is not None or rule.group_id is not None


async def claim_cooldown(
    *, session: AsyncSession, rule_id: int, chat: str, cooldown_s: int, now: datetime
) -> bool:
    """True if the rule may answer this chat now, and records that it does. One statement
    (upsert whose update only happens when the last answer is old enough): two instances
    answering the same chat at once cannot both win."""
    insert = dialect_insert(session)
    statement = (
        insert(QaCooldown)
        .values(rule_id=rule_id, chat=chat, answered_at=now)
        .on_conflict_do_update(
            index_elements=["rule_id", "chat"],
            set_={"answered_at": now},
            where=QaCooldown.answered_at <= now - timedelta(seconds=cooldown_s),
        )
        .returning(QaCooldown.rule_id)
    )
    return (await session.execute(statement)).first() is not None


async def _cohort_for(session: AsyncSession, rule: QaRule, who: Asker) -> Cohort | None:
    cohort_id = rule.cohort_id or (min(who.cohort_ids) if who.cohort_ids else None)
    return await session.get(Cohort, cohort_id) if cohort_id is not None else None


async def reply_message(
    *, session: AsyncSession, rule: QaRule, who: Asker, public_base_url: str, now: datetime
) -> OutMessage:
    """The rule's reply text, or its script rendered for the asker (`who` with their scopes
    read: their cohort and H5 link go into it; RenderError, ScriptNotFoundError if it
    cannot be)."""
    if rule.reply is not None:
        return OutMessage("text", content=rule.reply)
    assert who.scoped, "a script is rendered for the asker's cohort (with_scopes)"
    script = await get_script(session=session, key=rule.script_key or "")
    cohort = await _cohort_for(session, rule, who)
    h5 = None
    if who.member_id is not None and who.cohort_ids:
        h5 = await member_url(
            session=session, member_id=who.member_id, public_base_url=public_base_url, now=now
        )
    context = RenderContext(
        student_name=who.name,
        cohort_name=cohort.name if cohort else None,
        camp_name=cohort.camp if cohort else None,
        total_days=cohort.days if cohort else None,
        h5_url=h5,
    )
    return render(script, context)


async def record_passive(
    *, session: AsyncSession, key: str, target: str, payload: dict[str, object], now: datetime
) -> None:
    """The outbox row that shows a reply went out passively; never picked up by a sender."""
    insert = dialect_insert(session)
    await session.execute(
        insert(OutboxMessage)
        .values(
            key=key,
            channel=PASSIVE_CHANNEL,
            target=target,
            payload=payload,
            rate_key=None,
            status=OutboxStatus.SENT,
            attempts=1,
            max_attempts=1,
            not_before=now,
            in_doubt=0,
            created_at=now,
            updated_at=now,
            sent_at=now,
        )
        .on_conflict_do_nothing(index_elements=["key"])
    )


async def passive_to_app_message(
    *,
    session: AsyncSession,
    key: str,
    route: Destination,
    payload: dict[str, object],
    now: datetime,
) -> int | None:
    """The passive reply under `key` that no callback carried, made the pending app message
    `enqueue_message` would have written under that key instead; its id (None if the row
    is not a passive reply, e.g. already converted)."""
    statement = (
        update(OutboxMessage)
        .where(OutboxMessage.key == key, OutboxMessage.channel == PASSIVE_CHANNEL)
        .values(
            channel=route.channel,
            target=route.target,
            payload=payload,
            rate_key=rate_key(route.channel, route.target),
            status=OutboxStatus.PENDING,
            attempts=0,
            max_attempts=MAX_ATTEMPTS,
            not_before=now,
            in_doubt=0,
            updated_at=now,
            sent_at=None,
        )
        .returning(OutboxMessage.id)
    )
    return (await session.execute(statement)).scalar_one_or_none()


async def _send(
    session: AsyncSession,
    rule: QaRule,
    who: Asker,
    *,
    event_key: str,
    base: str,
    passive: PassiveOffer | None,
    now: datetime,
) -> int | None:
    """Reply by the rule; the outbox row to push after commit, None if there is none."""
    key, route = f"qa:{event_key}:{rule.id}", Destination(Channel.APP_MESSAGE, who.userid)
    try:
        message = await reply_message(
            session=session, rule=rule, who=who, public_base_url=base, now=now
        )
        payload = message_payload(route, message)  # within the app message's limits
        fallback = partial(passive_to_app_message, key=key, route=route, payload=payload)
        if (
            message.msgtype == "text"
            and passive is not None
            and passive(message.content, fallback=fallback)
        ):
            await record_passive(
                session=session, key=key, target=who.userid, payload=payload, now=now
            )
            return None
        return await enqueue_message(
            session=session, key=key, destination=route, message=message, now=now
        )
    except (RenderError, ScriptNotFoundError, UndeliverableError) as exc:
        # Checked when saved; a script edited since may no longer render or fit.
        logger.warning("Q&A rule %s cannot answer: %s", rule.id, exc)
        return None


async def _matching(
    session: AsyncSession, userid: str, question: str
) -> tuple[Asker, list[RuleSpec]]:
    """Who asks, and the rules that match their question in answer order. Matched for
    everyone first: the asker's scopes are read only if a matched rule has one."""
    version, who = await lookup(session=session, userid=userid)
    matched = await match(session=session, question=question, allow=None, version=version)
    if any(_scoped(spec) for spec in matched):
        who = await with_scopes(session=session, who=who)
        matched = [spec for spec in matched if who.allows(spec)]
    return who, matched


async def answer(
    *,
    session: AsyncSession,
    userid: str,
    question: str,
    event_key: str,
    public_base_url: str,
    now: datetime,
    passive: PassiveOffer | None = None,
) -> list[int]:
    """Reply to `question`: the first reply through `passive` if it takes it, the others
    queued (outbox row ids, to send right after commit).

    Matching rules answer lowest priority first (ties by id) until one with `block` has
    answered. A rule in its cooldown for this chat stays silent but still counts as having
    answered, so a lower rule never stands in for it. A question no rule matches is
    counted in the unanswered list. Only its first MAX_TEXT characters count: WeCom's texts
    are at most 2,048 bytes, and nothing longer should cost more to handle.
    """
    question = question[:MAX_TEXT]
    who, matched = await _matching(session, userid, question)
    if not matched:
        await record_unanswered(session=session, question=question, now=now)
        return []
    rows = await session.scalars(select(QaRule).where(QaRule.id.in_([r.id for r in matched])))
    by_id = {r.id: r for r in rows}
    sent: list[int] = []
    for spec in matched:
        rule = by_id.get(spec.id)
        if rule is None or not rule.enabled:
            continue  # changed since the matcher was built
        if rule.cooldown_s <= 0 or await claim_cooldown(
            session=session, rule_id=rule.id, chat=userid, cooldown_s=rule.cooldown_s, now=now
        ):
            await count_hit(session=session, rule_id=rule.id)
            if rule.reply is None:  # a script: rendered for the asker's cohort
                who = await with_scopes(session=session, who=who)
            row_id = await _send(
                session,
                rule,
                who,
                event_key=event_key,
                base=public_base_url,
                passive=passive,
                now=now,
            )
            sent += [row_id] if row_id is not None else []
        if rule.block:
            break
    return sent
