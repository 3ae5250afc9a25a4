"""群SOP tables: what became of each item a staff member was asked to post, and each
cohort's timing (when to remind, when to escalate, to whom).

The item itself is an outbox row on the `staff` channel (`app.channels.staff`); its
`SopTask` is written when its staff member is told (the row turns `awaiting_staff`) and
records the telling, the reminder, the escalation and the outcome: posted on time, late,
or skipped — the stats' SOP completion per assistant.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime

REMIND_AFTER_MINUTES = 15
ESCALATE_AFTER_MINUTES = 30


class SopOutcome(StrEnum):
    ON_TIME = "on_time"  # posted within the cohort's escalation window of its time
    LATE = "late"
    SKIPPED = "skipped"


class SopTask(Base):
    __tablename__ = "sop_tasks"
    __table_args__ = (
        CheckConstraint("outcome IN ('on_time', 'late', 'skipped')", name="outcome"),
        CheckConstraint("chat_kind IN ('group', 'single')", name="chat_kind"),
        Index("ix_sop_tasks_cohort_id_staff_userid", "cohort_id", "staff_userid"),
        Index("ix_sop_tasks_outcome_due_at", "outcome", "due_at"),
    )

    outbox_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"),
        ForeignKey("outbox.id", ondelete="CASCADE"),
        primary_key=True,
    )
    staff_userid: Mapped[str] = mapped_column(String(128))
    chat_kind: Mapped[str] = mapped_column(String(8))  # group: a customer group; single: 1:1
    chat: Mapped[str] = mapped_column(String(200))  # the chat id or the external userid
    cohort_id: Mapped[int | None] = mapped_column(ForeignKey("cohorts.id", ondelete="SET NULL"))
    title: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    notified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_by: Mapped[str | None] = mapped_column(String(128))
    outcome: Mapped[str | None] = mapped_column(String(16))


class SopSettings(Base):
    """A cohort's 群SOP timing; no row means the defaults."""

    __tablename__ = "sop_settings"

    cohort_id: Mapped[int] = mapped_column(
        ForeignKey("cohorts.id", ondelete="CASCADE"), primary_key=True
    )
    remind_after_minutes: Mapped[int] = mapped_column(Integer, default=REMIND_AFTER_MINUTES)
    escalate_after_minutes: Mapped[int] = mapped_column(Integer, default=ESCALATE_AFTER_MINUTES)
    # WeCom userids of the operators told when an item is overdue.
    operator_userids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
