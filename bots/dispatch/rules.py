"""Composable rules for registrations: frozen dataclasses, AND-ed together.

A rule returns False, True, or a dict of what it matched (read by the handler
as `ctx.matched`), so handlers never re-parse what a rule already found.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from bots.dispatch.router import Context, RuleResult


def _field(ctx: Context[Any], name: str) -> str:
    value = getattr(ctx.event, name, "")
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True)
class FieldIn:
    """A string field of the event (e.g. `change_type`) is one of `values`."""

    name: str
    values: frozenset[str]

    def __call__(self, ctx: Context[Any]) -> RuleResult:
        return _field(ctx, self.name) in self.values


@dataclass(frozen=True, slots=True)
class OlderThan:
    """The event was created more than `age` ago: exactly the events a registration with
    `max_age=age` skips, for a handler that records what was missed."""

    age: timedelta

    def __call__(self, ctx: Context[Any]) -> RuleResult:
        created = ctx.event.created_at
        return created is not None and ctx.now - created > self.age


def ChangeType(*values: str) -> FieldIn:
    return FieldIn("change_type", frozenset(values))


def UpdateDetail(*values: str) -> FieldIn:
    return FieldIn("update_detail", frozenset(values))


def FromUser(*user_ids: str) -> FieldIn:
    return FieldIn("from_user", frozenset(user_ids))


@dataclass(frozen=True, slots=True)
class Keyword:
    """The text message contains one of `words`; the word is handed over as `keyword`."""

    words: tuple[str, ...]

    def __call__(self, ctx: Context[Any]) -> RuleResult:
        text = _field(ctx, "content")
        hit = next((word for word in self.words if word in text), None)
        return {"keyword": hit} if hit is not None else False


@dataclass(frozen=True, slots=True)
class Regex:
    """The text message matches `pattern`; the match is handed over as `match`."""

    pattern: re.Pattern[str]

    def __call__(self, ctx: Context[Any]) -> RuleResult:
        found = self.pattern.search(_field(ctx, "content"))
        return {"match": found} if found else False
