"""Check-in tables: per-cohort rules, one entry per member, camp day and kind, and a
per-member score row kept current on every submission (rank is one indexed count).

A camp day is counted from the cohort's start_date (day 0 = 开营) in the cohort's time
zone, but a day ends at the rule's `day_boundary` (04:00 by default): a check-in at 01:30
still counts for the evening before. Times are UTC (`UTCDateTime`).
"""

from __future__ import annotations

from datetime import datetime, time
from enum import StrEnum

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class EntryKind(StrEnum):
    CHECKIN = "checkin"
    HOMEWORK = "homework"


class EntryStatus(StrEnum):
    ON_TIME = "on_time"  # submitted on its own camp day
    MAKEUP = "makeup"  # 补卡: a past day, within the rule's window, at its cost
    LEAVE = "leave"  # 请假: pauses the streak instead of breaking it (kind checkin only)


class CheckinRule(Base):
    """How a cohort counts check-ins; a cohort without a row uses the defaults below."""

    __tablename__ = "checkin_rules"

    cohort_id: Mapped[int] = mapped_column(
        ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True
    )
    day_boundary: Mapped[time] = mapped_column(Time, default=time(4, 0))
    makeup_days: Mapped[int] = mapped_column(Integer, default=2)  # 0 = no 补卡
    makeup_cost: Mapped[int] = mapped_column(Integer, default=5)  # points deducted per 补卡
    leave_limit: Mapped[int] = mapped_column(Integer, default=2)  # 请假 days per cohort
    checkin_points: Mapped[int] = mapped_column(Integer, default=10)
    homework_points: Mapped[int] = mapped_column(Integer, default=20)
    # {"3": 20, "7": 50}: bonus once per cohort when the streak first reaches the key.
    milestones: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    full_attendance_points: Mapped[int] = mapped_column(Integer, default=100)  # 全勤
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CheckinEntry(Base):
    """One member's check-in (or homework) for one camp day; resubmitting edits it."""

    __tablename__ = "checkin_entries"
    __table_args__ = (
        UniqueConstraint("member_id", "cohort_id", "day", "kind"),
        Index("ix_checkin_entries_cohort_day", "cohort_id", "day", "kind"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id", ondelete="CASCADE"))
    cohort_id: Mapped[int] = mapped_column(ForeignKey("cohorts.id", ondelete="CASCADE"))
    day: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(16))  # EntryKind
    status: Mapped[str] = mapped_column(String(16))  # EntryStatus
    text: Mapped[str] = mapped_column(Text, default="")
    # Storage keys of the uploaded images, in the order given (≤ 9).
    images: Mapped[list[str]] = mapped_column(JSON, default=list)
    source: Mapped[str] = mapped_column(String(16), default="h5")  # h5 | app
    points: Mapped[int] = mapped_column(Integer, default=0)  # what this entry earned (net)
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Homework review (admin API).
    score: Mapped[int | None] = mapped_column(Integer)
    comment: Mapped[str | None] = mapped_column(Text)
    reviewed_by: Mapped[str | None] = mapped_column(String(64))
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class MemberScore(Base):
    """A member's standing in a cohort, recomputed from their entries on every change."""

    __tablename__ = "member_scores"
    __table_args__ = (Index("ix_member_scores_rank", "cohort_id", "points"),)

    member_id: Mapped[int] = mapped_column(
        ForeignKey("members.id", ondelete="CASCADE"), primary_key=True
    )
    cohort_id: Mapped[int] = mapped_column(
        ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True
    )
    points: Mapped[int] = mapped_column(Integer, default=0)
    streak: Mapped[int] = mapped_column(Integer, default=0)  # as of `streak_day`
    streak_day: Mapped[int | None] = mapped_column(Integer)  # last day counted in it
    best_streak: Mapped[int] = mapped_column(Integer, default=0)
    checked_days: Mapped[int] = mapped_column(Integer, default=0)
    homework_days: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
