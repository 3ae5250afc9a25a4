"""Q&A tables: the rules, their version (bumped by every change, so each process rebuilds its
matcher when it moves), per-chat cooldowns, and the questions nothing answered.

Times are UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class QaRule(Base):
    """Patterns → an answer (reply text or a script), for everyone or one cohort or group."""

    __tablename__ = "qa_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    patterns: Mapped[list[str]] = mapped_column(JSON)
    mode: Mapped[str] = mapped_column(String(16))  # qa_matcher.Mode
    reply: Mapped[str | None] = mapped_column(Text)
    script_key: Mapped[str | None] = mapped_column(String(100))
    # The question as shown in the H5 FAQ; the first keyword when unset.
    question: Mapped[str | None] = mapped_column(String(200))
    priority: Mapped[int] = mapped_column(Integer, default=100)  # lower answers first
    block: Mapped[bool] = mapped_column(Boolean, default=True)  # stop at this rule
    cohort_id: Mapped[int | None] = mapped_column(
        ForeignKey("cohorts.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[int | None] = mapped_column(
        ForeignKey("groups.id", ondelete="CASCADE"), index=True
    )
    cooldown_s: Mapped[int] = mapped_column(Integer, default=0)  # per rule and chat
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QaRulesVersion(Base):
    """One row (id 1): the rules' version; every create, edit or delete adds one in its
    transaction, so a process compares it with its matcher's before answering."""

    __tablename__ = "qa_rules_version"

    id: Mapped[int] = mapped_column(primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Random, set when the row is created: a cached matcher is keyed by (epoch, version), so
    # one built from another database (tests, a restored backup) is never taken for current.
    epoch: Mapped[str] = mapped_column(String(32))


class QaCooldown(Base):
    """When a rule last answered a chat (a user's 1:1 with the app)."""

    __tablename__ = "qa_cooldowns"

    rule_id: Mapped[int] = mapped_column(
        ForeignKey("qa_rules.id", ondelete="CASCADE"), primary_key=True
    )
    chat: Mapped[str] = mapped_column(String(160), primary_key=True)
    answered_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QaUnanswered(Base):
    """A question nothing answered, once per distinct normalized text."""

    __tablename__ = "qa_unanswered"
    __table_args__ = (Index("ix_qa_unanswered_count", "count"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of `normalized`
    normalized: Mapped[str] = mapped_column(Text)
    example: Mapped[str] = mapped_column(Text)  # the first asking, as written
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
