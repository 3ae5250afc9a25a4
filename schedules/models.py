"""Schedules and their firings.

A schedule says what (a script), when (a trigger) and to whom (a target). Its
firings are planned ahead as rows, so a restart loses none, a firing missed
beyond the grace is recorded (not silently dropped), and the calendar is a query.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class FiringStatus(StrEnum):
    PLANNED = "planned"
    FIRED = "fired"
    MISSED = "missed"  # due longer ago than the misfire grace when the scheduler saw it
    CANCELLED = "cancelled"  # the schedule changed or was disabled before it was due


class Schedule(Base):
    __tablename__ = "schedules"

    id: Mapped[int] = mapped_column(primary_key=True)
    script_key: Mapped[str] = mapped_column(String(100))
    cohort_id: Mapped[int | None] = mapped_column(
        ForeignKey("cohorts.id", ondelete="CASCADE"), index=True
    )
    trigger: Mapped[dict[str, Any]] = mapped_column(JSON)
    target: Mapped[dict[str, Any]] = mapped_column(JSON)
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Firing(Base):
    """One planned (or past) firing of a schedule, named by its occurrence."""

    __tablename__ = "schedule_firings"
    __table_args__ = (
        UniqueConstraint("schedule_id", "occurrence"),
        CheckConstraint(
            "status IN (" + ", ".join(repr(s.value) for s in FiringStatus) + ")", name="status"
        ),
        Index("ix_schedule_firings_status_due_at", "status", "due_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    schedule_id: Mapped[int] = mapped_column(ForeignKey("schedules.id", ondelete="CASCADE"))
    # "day3", "member42", "cron-20260303T0000Z", "manual-…": stable across re-plans.
    occurrence: Mapped[str] = mapped_column(String(80))
    # For member_day firings: the one member it is for.
    member_id: Mapped[int | None] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16), default=FiringStatus.PLANNED)
    fired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    enqueued: Mapped[int] = mapped_column(Integer, default=0)
    note: Mapped[str | None] = mapped_column(Text)
