"""This process's Q&A matcher: built from the enabled rules, rebuilt when the rules' version
(`qa_rules_version`, bumped by every save) moved, and asked without I/O by the callback
(`may_answer`)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bots.qa.matcher import Allow, Matcher, Mode, RuleSpec
from bots.qa.models import QaRule, QaRulesVersion

VERSION_ROW = 1

VersionKey = tuple[str, int]  # (epoch, version) of the rules
NO_VERSION: VersionKey = ("", 0)  # no rule saved yet: no version row


@dataclass(frozen=True, slots=True)
class _Cached:
    key: VersionKey
    matcher: Matcher


_cache: _Cached | None = None


_VERSION = select(QaRulesVersion.epoch, QaRulesVersion.version).where(
    QaRulesVersion.id == VERSION_ROW
)


async def _version_key(session: AsyncSession) -> VersionKey:
    row = (await session.execute(_VERSION)).first()
    return (row.epoch, row.version) if row is not None else NO_VERSION


def spec_of(rule: QaRule) -> RuleSpec:
    return RuleSpec(
        id=rule.id,
        mode=Mode(rule.mode),
        patterns=tuple(rule.patterns),
        priority=rule.priority,
        cohort_id=rule.cohort_id,
        group_id=rule.group_id,
    )


async def matcher_for(*, session: AsyncSession, version: VersionKey) -> Matcher:
    """This process's matcher for the rules at `version`, which the caller read from
    `qa_rules_version` (in the session, before this call): rebuilt when it moved (another
    instance, or an admin request, saved a rule). As the version was read before the
    rules, a rule saved in between makes the next call rebuild again, never leaves a stale
    matcher current."""
    global _cache
    if _cache is not None and _cache.key == version:
        return _cache.matcher
    rules = (await session.execute(select(QaRule).where(QaRule.enabled))).scalars().all()
    specs = [spec_of(r) for r in rules]
    matcher = await asyncio.to_thread(Matcher, specs, version[1])  # compiling every regex
    _cache = _Cached(version, matcher)
    return matcher


def may_answer(question: str) -> bool:
    """Whether some rule may answer `question`, by this process's matcher as last built: no
    I/O, for the callback deciding whether to wait for a passive reply. True while none is
    built. A rule another instance saved since is unknown here until this process's next
    question rebuilds the matcher: until then it answers by app message, not passively."""
    cached = _cache
    return cached is None or cached.matcher.may_match(question)


async def get_matcher(*, session: AsyncSession) -> Matcher:
    """This process's matcher for the rules' current version (`matcher_for`)."""
    return await matcher_for(session=session, version=await _version_key(session))


async def match(
    *,
    session: AsyncSession,
    question: str,
    allow: Allow | None,
    version: VersionKey | None = None,
) -> list[RuleSpec]:
    """The rules `question` matches (`Matcher.match`), by the matcher for `version` (the
    rules' version the caller read; None: read here). With regexes among the rules it is
    searched in a worker thread: RE2 lets go of the GIL while it searches, so however long
    the regexes take, the event loop (and every other request) goes on. Keywords alone
    are one linear pass of the automaton, cheaper than the trip to a thread."""
    if version is None:
        matcher = await get_matcher(session=session)
    else:
        matcher = await matcher_for(session=session, version=version)
    if not matcher.has_regexes:
        return matcher.match(question, allow)
    return await asyncio.to_thread(matcher.match, question, allow)


def forget_matcher() -> None:
    """A rule was saved here: `may_answer` says "may" until a question rebuilds the matcher
    (from the new version, once committed)."""
    global _cache
    _cache = None
