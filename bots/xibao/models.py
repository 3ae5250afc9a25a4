"""喜报 tables: achievements, the broadcast each one became, and its target groups.

A broadcast's progress is read from the outbox rows its targets point at (and, for customer
groups, from `mass_send_results`), so it can never disagree with what was really sent.
Times are UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime

TITLE_MAX = 100
DETAIL_MAX = 1000
_OUTBOX_ID = BigInteger().with_variant(Integer, "sqlite")


class AchievementStatus(StrEnum):
    PENDING = "pending"  # reported by the student on their H5 page, not yet approved
    APPROVED = "approved"  # broadcast


class AchievementSource(StrEnum):
    ADMIN = "admin"
    H5 = "h5"


class Achievement(Base):
    """A student's result (上岸、出单、优秀作业) worth a 喜报."""

    __tablename__ = "achievements"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved')", name="status"),
        Index("ix_achievements_status_created_at", "status", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    # The cohort the student was in when it happened; None if they were in none.
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(TITLE_MAX))
    detail: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    # The groups an operator chose; None: every active group of the cohort.
    group_ids: Mapped[list[int] | None] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))  # operator name, or "h5"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    approved_by: Mapped[str | None] = mapped_column(String(64))
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Broadcast(Base):
    """One 喜报 going out: the poster it carries and, through its targets, its progress."""

    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    achievement_id: Mapped[int] = mapped_column(
        ForeignKey("achievements.id", ondelete="CASCADE"), unique=True
    )
    script_key: Mapped[str] = mapped_column(String(100))
    # The PNG itself (≈100–200 KB), for operators to look at; sends carry their own copy.
    # None when it could not be drawn (no CJK font): `poster_missing` says why, in Chinese.
    poster: Mapped[bytes | None] = mapped_column(LargeBinary)
    poster_missing: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class BroadcastTarget(Base):
    """One group of a broadcast and the outbox row that reaches it.

    Robots and app chats get the poster as an image message (the script's text when there is
    no poster); a customer group one mass-send task carrying the script's text and the poster.
    A group that cannot be reached (no robot key, a message its channel refuses) has no row
    and says why in `error`.
    """

    __tablename__ = "broadcast_targets"
    __table_args__ = (UniqueConstraint("broadcast_id", "group_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(
        ForeignKey("broadcasts.id", ondelete="CASCADE"), index=True
    )
    group_id: Mapped[int | None] = mapped_column(ForeignKey("groups.id", ondelete="SET NULL"))
    group_name: Mapped[str] = mapped_column(String(200), default="")
    channel: Mapped[str] = mapped_column(String(32), default="")
    outbox_id: Mapped[int | None] = mapped_column(
        _OUTBOX_ID, ForeignKey("outbox.id", ondelete="SET NULL")
    )
    error: Mapped[str | None] = mapped_column(Text)
